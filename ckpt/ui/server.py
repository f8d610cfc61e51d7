"""The HTTP server of ``ckpt ui``: pages, static files, the JSON API and event streams.

Built on the standard library's ``ThreadingHTTPServer``: a thread per
connection, which a dashboard watched by a few browser tabs needs and no
more.  URLs:

- ``/``, ``/jobs/JOB``, ``/store`` -- the pages (one static page that draws
  what its URL names); ``JOB`` goes through the library's name validation
  and must exist, so ``/jobs/..%2F..`` is a 404 like any unknown job.
- ``/static/NAME`` -- the files shipped in ``ckpt/ui/static``, looked up by
  name in the list read at start-up (never a path built from the URL).
- ``/api/...`` -- :mod:`ckpt.ui.api`, and the event streams of
  :mod:`ckpt.ui.live` under ``/api/events/``.

Safety: the server binds to loopback unless ``allow_remote`` is given, and
then there is no authentication: anyone who reaches the port reads the
whole store.  On loopback it answers only requests whose ``Host`` is a
loopback name, so that a web page elsewhere cannot read it through a DNS
name rebound to 127.0.0.1, and refuses a POST from another origin.  The
dashboard never writes to the store.
"""

from __future__ import annotations

import contextlib
import html
import ipaddress
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ckpt import __version__
from ckpt.errors import CkptError
from ckpt.repository import Repository, resolve_location
from ckpt.repository import open as open_store
from ckpt.storage import is_url, shown_url
from ckpt.ui import api
from ckpt.ui.live import Event, job_events, jobs_events
from ckpt.ui.verifier import VerifyRunner

#: Seconds without an event after which a stream sends a comment, so proxies and
#: browsers keep the connection.
KEEPALIVE_SECONDS = 15.0
#: Store handles kept open between requests.
POOL_SIZE = 4

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_PAGES = ("", "jobs", "store")
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    """True if ``host`` (a name or an address) is this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_and_port(host: str) -> tuple[str, str]:
    """``("localhost", "8080")`` for ``localhost:8080``, ``("::1", "")`` for ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest.removeprefix(":")
    name, sep, port = host.rpartition(":")
    if not sep or ":" in name:
        return host, ""
    return name, port


def static_files() -> dict[str, tuple[bytes, str]]:
    """Name -> (content, content type) of every file shipped in ``ckpt/ui/static``."""
    found: dict[str, tuple[bytes, str]] = {}
    for item in resources.files("ckpt.ui").joinpath("static").iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if item.is_file() and suffix in _CONTENT_TYPES:
            found[item.name] = (item.read_bytes(), _CONTENT_TYPES[suffix])
    return found


class RepositoryPool:
    """Open handles on one store, each used by one thread at a time.

    A handle's object store caches pack indexes, so reusing handles keeps
    requests fast; a request that finds none idle opens another.
    """

    def __init__(self, location: str, keep: int = POOL_SIZE) -> None:
        self.location = location
        self._keep = keep
        self._idle: list[Repository] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def repository(self) -> Iterator[Repository]:
        with self._lock:
            repo = self._idle.pop() if self._idle else None
        if repo is None:
            repo = open_store(self.location, durable=False)
        try:
            yield repo
        finally:
            with self._lock:
                if self._closed or len(self._idle) >= self._keep:
                    repo.close()
                else:
                    self._idle.append(repo)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for repo in idle:
            repo.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    dashboard: Dashboard


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class Dashboard:
    """``ckpt ui`` for the store at ``location``: bound when created, serving once
    :meth:`serve_forever` (or :meth:`start`) runs, until :meth:`shutdown`.

    Raises StoreNotFoundError when there is no store, and CkptError for a
    ``host`` that is not loopback without ``allow_remote`` or a port that
    cannot be bound.
    """

    def __init__(
        self,
        location: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        interval: float = 1.0,
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise CkptError(
                f"refusing to serve on {host}, which is not loopback: the dashboard has no "
                "authentication (allow it explicitly to serve the store to your network)"
            )
        where = resolve_location(location)
        if not is_url(where):
            where = str(Path(where.removeprefix("file://")).resolve())
        self.pool = RepositoryPool(where)
        with self.pool.repository() as repo:
            self.location = repo.location
        self.interval = interval
        self.allow_remote = allow_remote
        self.stop = threading.Event()
        self.static = static_files()
        self.verifier = VerifyRunner(self.pool.repository)
        server_class = _IPv6Server if ":" in host else _Server
        try:
            self.server = server_class((host.strip("[]"), port), _Handler)
        except OSError as exc:
            self.pool.close()
            raise CkptError(f"cannot serve on {host} port {port}: {exc.strerror or exc}") from None
        self.server.dashboard = self
        self.host = host
        self.port: int = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        shown = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/"

    def answers_to(self, host: str) -> bool:
        """Whether a request whose ``Host`` (or ``Origin``'s host) is ``host`` is for this
        server: any, with ``allow_remote``; else a loopback name with this port."""
        if self.allow_remote:
            return True
        name, port = _host_and_port(host)
        if port != str(self.port) and not (port == "" and self.port == 80):
            return False
        return is_loopback(name)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (from another thread) or KeyboardInterrupt."""
        self.server.serve_forever(poll_interval=0.2)

    def start(self) -> Dashboard:
        """Serve in a background thread; return self."""
        self._thread = threading.Thread(target=self.serve_forever, name="ckpt-ui", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving: end the event streams, close the socket and the store handles."""
        self.stop.set()
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()
        self.verifier.wait(timeout=5)
        self.pool.close()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = f"ckpt-ui/{__version__}"

    @property
    def dashboard(self) -> Dashboard:
        return self.server.dashboard

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is noise on the terminal that runs `ckpt ui`

    # -- answers ----------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, doc: object, status: int = 200) -> None:
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _send_error(self, error: api.ApiError) -> None:
        self._send_json(error.to_json(), error.status)

    def _send_page(self) -> None:
        body, content_type = self.dashboard.static["index.html"]
        self._send(200, body, content_type)

    def _send_missing_page(self, message: str, status: int = 404) -> None:
        title = "Not found" if status == 404 else "Forbidden"
        body = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{title} - ckpt</title><link rel='stylesheet' href='/static/style.css'>"
            f"</head><body><main class='missing'><h1>{title}</h1>"
            f"<p id='missing-message'>{html.escape(message)}</p>"
            "<p><a href='/'>Back to the jobs</a></p></main></body></html>"
        )
        self._send(status, body.encode("utf-8"), _CONTENT_TYPES[".html"])

    # -- requests ---------------------------------------------------------------

    def _segments(self) -> list[str] | None:
        """The URL's path as decoded segments; None for one no route can match."""
        path = urlsplit(self.path).path
        if not path.startswith("/"):
            return None
        raw = path[1:].split("/")
        if len(raw) > 1 and raw[-1] == "":
            raw.pop()  # a trailing slash
        segments = []
        for part in raw:
            try:
                segment = unquote(part, errors="strict")
            except UnicodeDecodeError:
                return None
            if segment in (".", "..") or "/" in segment or "\\" in segment or "\0" in segment:
                return None
            segments.append(segment)
        return [] if segments == [""] else segments

    def _query(self) -> api.Query:
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def _host_allowed(self) -> bool:
        host = self.headers.get("Host")
        return host is None or self.dashboard.answers_to(host)

    def _origin_allowed(self) -> bool:
        origin = self.headers.get("Origin")
        if origin is None:
            return True
        netloc = urlsplit(origin).netloc.lower()
        if self.dashboard.allow_remote:
            return netloc == (self.headers.get("Host") or "").lower()
        return self.dashboard.answers_to(netloc)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_allowed():
            self._send_missing_page("this dashboard answers only to a loopback name", 403)
            return
        segments = self._segments()
        is_api = urlsplit(self.path).path.startswith("/api/")
        try:
            if segments is None:
                raise api.ApiError(404, "not-found", f"nothing at {urlsplit(self.path).path}")
            if segments[:1] == ["api"]:
                self._api(segments[1:])
            elif segments[:1] == ["static"] and len(segments) == 2:
                found = self.dashboard.static.get(segments[1])
                if found is None:
                    self._send_missing_page(f"no file {segments[1]!r}")
                else:
                    self._send(200, *found)
            elif segments in ([], ["store"]):
                self._send_page()
            elif len(segments) == 2 and segments[0] == "jobs":
                with self.dashboard.pool.repository() as repo:
                    api.path_job(repo, segments[1])
                self._send_page()
            elif segments == ["favicon.ico"]:
                self._send(200, *self.dashboard.static["favicon.svg"])
            else:
                self._send_missing_page(f"no page at {self.path}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:
            error = api.api_error(exc)
            if error.status == 500:
                traceback.print_exc(file=sys.stderr)
            if is_api:
                self._send_error(error)
            else:
                self._send_missing_page(error.message, error.status)

    def do_POST(self) -> None:
        if not self._host_allowed() or not self._origin_allowed():
            self._send_error(api.ApiError(403, "forbidden", "cross-origin request refused"))
            return
        if self._segments() != ["api", "verify"]:
            self._send_error(api.ApiError(405, "invalid", f"{self.path} accepts no POST"))
            return
        try:
            full = api.flag(self._query(), "full")
        except api.ApiError as error:
            self._send_error(error)
            return
        self._send_json(self.dashboard.verifier.start(full=full), 202)

    def _api(self, route: list[str]) -> None:
        dashboard = self.dashboard
        query = self._query()
        if route == ["store"]:
            self._send_json(
                {
                    "location": shown_url(dashboard.location),
                    "version": __version__,
                    "read_only": True,
                    "interval": dashboard.interval,
                }
            )
            return
        if route == ["verify"]:
            self._send_json(dashboard.verifier.state())
            return
        if route[:1] == ["events"]:
            self._events(route[1:])
            return
        with dashboard.pool.repository() as repo:
            if route == ["jobs"]:
                doc = api.jobs(repo, query)
            elif route == ["stats"]:
                doc = api.stats(repo, query)
            elif len(route) == 3 and route[0] == "jobs" and route[2] in api.JOB_ENDPOINTS:
                job = api.path_job(repo, route[1])
                doc = api.JOB_ENDPOINTS[route[2]](job, query)
            else:
                raise api.ApiError(404, "not-found", f"no endpoint {urlsplit(self.path).path}")
        self._send_json(doc)

    def _events(self, route: list[str]) -> None:
        dashboard = self.dashboard
        with dashboard.pool.repository() as repo:
            if route == ["jobs"]:
                events = jobs_events(repo, interval=dashboard.interval, stop=dashboard.stop)
            elif len(route) == 2 and route[0] == "jobs":
                name = api.path_job(repo, route[1]).name
                events = job_events(repo, name, interval=dashboard.interval, stop=dashboard.stop)
            else:
                raise api.ApiError(404, "not-found", f"no event stream {urlsplit(self.path).path}")
            self._stream(events)

    def _stream(self, events: Iterator[Event | None]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        self.wfile.write(b"retry: 2000\n\n")
        self.wfile.flush()
        try:
            self._write_events(events)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away
        except Exception:
            traceback.print_exc(file=sys.stderr)  # the answer has begun: only the log can tell

    def _write_events(self, events: Iterator[Event | None]) -> None:
        quiet_since = time.monotonic()
        for event in events:
            if event is not None:
                name, doc = event
                data = json.dumps(doc, ensure_ascii=False)
                self.wfile.write(f"event: {name}\ndata: {data}\n\n".encode())
            elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                self.wfile.write(b": keep-alive\n\n")
            else:
                continue
            self.wfile.flush()
            quiet_since = time.monotonic()
