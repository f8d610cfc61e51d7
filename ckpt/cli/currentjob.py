"""The current job: what ``ckpt log`` means when no JOB is given.

A person working on one job sets it once, with ``ckpt use JOB`` (remembered
per store, for this user) or ``$CKPT_JOB`` (which wins); then every command
that takes a JOB first may leave it out: ``ckpt log``, ``ckpt show HEAD~1``,
``ckpt cat outline``, ``ckpt checkout outline``.

The rule, one for every command: when a current job is set and the first
word is not the name of a job in the store (or there is no word), the
current job is put first.  A word that names a job is always that job.

``ckpt use`` remembers the job in a small JSON file of the user's, under
``$XDG_STATE_HOME/ckpt`` (default ``~/.local/state/ckpt``), keyed by the
store's location: never in the store, which other people may share.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

ENV_VAR = "CKPT_JOB"
STATE_FILE = "current-job.json"


def state_path() -> Path:
    """The file that remembers each store's current job for this user."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "ckpt" / STATE_FILE


def _read_all() -> dict[str, str]:
    try:
        doc = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k): str(v) for k, v in doc.items() if isinstance(v, str)}


def remembered(location: str) -> str | None:
    """The job ``ckpt use`` set for the store at ``location``, or None."""
    return _read_all().get(location)


def remember(location: str, job: str | None) -> None:
    """Set (or with None forget) the current job of the store at ``location``; the file is
    replaced whole, so that a crash leaves the old one or the new one."""
    known = _read_all()
    if job is None:
        known.pop(location, None)
    else:
        known[location] = job
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def current(ctx: click.Context) -> tuple[str, str] | None:
    """This invocation's current job and where it was set (``$CKPT_JOB`` or ``ckpt use``),
    or None.  The store is opened to read what ``ckpt use`` remembered."""
    from ckpt.cli.context import open_repo
    from ckpt.errors import CkptError

    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env, f"${ENV_VAR}"
    try:
        location = open_repo(ctx).location
    except CkptError:
        return None  # no store: the command says so itself
    job = remembered(location)
    return None if job is None else (job, "ckpt use")


def _is_job(ctx: click.Context, word: str) -> bool:
    from ckpt.cli.context import open_repo
    from ckpt.errors import CkptError
    from ckpt.history.names import job_name

    try:
        return open_repo(ctx).has_job(job_name(word))
    except CkptError:
        return False


class JobCommand(click.Command):
    """A command whose first argument is JOB, which may be left out when a current job is
    set (see the module docstring)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not any(arg in ("-h", "--help") for arg in args):
            args = self._with_current_job(ctx, args)
        try:
            return super().parse_args(ctx, args)
        except click.MissingParameter as exc:
            if exc.param is not None and exc.param.name == "job":
                raise click.UsageError(
                    f"Missing argument 'JOB' (or set a current job: `ckpt use JOB`, or ${ENV_VAR})",
                    ctx,
                ) from None
            raise

    def _with_current_job(self, ctx: click.Context, args: list[str]) -> list[str]:
        found = current(ctx)
        if found is None:
            return args
        try:
            # The parser knows each option's arity: what it puts in "job" is the first word
            # that is not an option or an option's value.
            parsed, _, _ = self.make_parser(ctx).parse_args(list(args))
        except click.UsageError:
            return args  # let the real parse report it
        first = parsed.get("job")
        if isinstance(first, str) and _is_job(ctx, first):
            return args
        job, where = found
        ctx.meta["current_job"] = (job, where)  # for get_job's error, if the job is gone
        return [job, *args]
