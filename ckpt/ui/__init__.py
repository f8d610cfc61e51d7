"""``ckpt ui``: a local web dashboard of one store, served by the standard library.

- :mod:`ckpt.ui.api` -- the JSON API: each endpoint returns the document
  that the matching ``ckpt COMMAND --json`` prints, built by the same library
  functions; a few documents of its own (a page of a stage value, the state
  of a verify run, the store) are documented beside them in ``docs/cli.md``.
- :mod:`ckpt.ui.live` -- what the pages learn without reloading: the job
  listing and a job's refs, polled from the store and pushed as server-sent
  events, so that runs in other processes show up as they advance.
- :mod:`ckpt.ui.verifier` -- the latest verify report, run in the background.
- :mod:`ckpt.ui.server` -- the HTTP server: pages, static files, the API and
  the event streams, bound to loopback unless asked otherwise.
- ``static/`` -- the pages: hand-written HTML, CSS and JavaScript (SVG for
  the commit graph and the charts), shipped in the package; no CDN, no build
  step.

Nothing here is imported by ``import ckpt`` or ``ckpt --help``.
"""
