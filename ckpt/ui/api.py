"""The JSON API of ``ckpt ui``: what each endpoint returns, and how errors are answered.

Each read endpoint returns the document that the matching ``ckpt COMMAND
--json`` prints, built by the same library function, so that a script can
use either and the schema is documented once (``docs/cli.md``).  The few
documents the command line has no use for (a page of a stage value, the
state of a verify run, the store the dashboard serves) are described in
:data:`SCHEMAS` and documented beside the others.

Names taken from a URL (job, stage) go through the library's name
validation before anything is read; revisions go through the job's
revision parser.  Every error becomes an :class:`ApiError`: an HTTP status
and a one-line message, with damage to the store (a corrupt or missing
object or ref) reported as such rather than as a server error.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ckpt.errors import (
    CkptError,
    ConflictError,
    CorruptObjectError,
    CorruptRefError,
    NotFoundError,
    ObjectNotFoundError,
    StorageError,
)
from ckpt.history import names
from ckpt.history.job import Job
from ckpt.objects.model import ENCODING_RAW
from ckpt.repository import Repository

#: The bytes of a stage value one request returns at most: larger values are paged.
MAX_PAGE_BYTES = 1 << 20
#: The page size when the request names none.
PAGE_BYTES = 64 << 10
#: Stage values larger than this (old and new together) are not diffed by the dashboard.
MAX_DIFF_BYTES = 4 << 20
#: Checkpoints a log request returns when it does not say.
DEFAULT_LOG_LIMIT = 200

#: The parameters of a request: name -> every value given, as ``urllib.parse.parse_qs`` reads them.
Query = Mapping[str, Sequence[str]]
Document = dict[str, Any]


@attrs.frozen
class ApiError(Exception):
    """An answer other than 200: the HTTP status, a kind (``not-found``, ``invalid``,
    ``forbidden``, ``damaged``, ``conflict``, ``too-large``, ``storage``, ``error``,
    ``internal``) and a one-line message for a person."""

    status: int
    kind: str
    message: str

    def to_json(self) -> Document:
        return {"error": {"kind": self.kind, "message": self.message, "status": self.status}}


def api_error(exc: BaseException) -> ApiError:
    """The answer for an exception raised while serving a request (first match wins)."""
    if isinstance(exc, ApiError):
        return exc
    message = (str(exc) or exc.__class__.__name__).splitlines()[0]
    if isinstance(exc, CorruptObjectError | ObjectNotFoundError | CorruptRefError):
        return ApiError(422, "damaged", message)
    if isinstance(exc, NotFoundError):
        return ApiError(404, "not-found", message)
    if isinstance(exc, ConflictError):
        return ApiError(409, "conflict", message)
    if isinstance(exc, StorageError):
        return ApiError(503, "storage", f"the store could not be read: {message}")
    if isinstance(exc, CkptError):
        return ApiError(400, "invalid" if isinstance(exc, ValueError) else "error", message)
    return ApiError(500, "internal", f"internal error: {exc.__class__.__name__}: {exc}")


# -- parameters -------------------------------------------------------------------


def path_job(repo: Repository, name: str) -> Job:
    """Job ``name`` taken from a URL: a name that is not valid, or names no job, is a 404
    (nothing is read for an invalid name)."""
    try:
        names.job_name(name)
    except CkptError as exc:
        raise ApiError(404, "not-found", str(exc)) from None
    job = repo.job(name)
    if not job.exists:
        raise ApiError(404, "not-found", f"job {name!r} not found in {repo.location}")
    return job


def _text(query: Query, key: str) -> str | None:
    values = query.get(key)
    return values[0] if values and values[0] else None


def flag(query: Query, key: str) -> bool:
    """Parameter ``key`` as a yes/no flag: ``1``/``true`` or ``0``/``false``/absent."""
    value = _text(query, key) or ""
    if value in ("", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise ApiError(400, "invalid", f"parameter {key} must be 1 or 0, not {value!r}")


def _integer(query: Query, key: str, default: int, *, minimum: int = 0) -> int:
    value = _text(query, key)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(
            400, "invalid", f"parameter {key} must be an integer, not {value!r}"
        ) from None
    if number < minimum:
        raise ApiError(400, "invalid", f"parameter {key} must be at least {minimum}")
    return number


def _stage(query: Query) -> str | None:
    stage = _text(query, "stage")
    return None if stage is None else names.stage_name(stage)


def _required_stage(query: Query) -> str:
    stage = _stage(query)
    if stage is None:
        raise ApiError(400, "invalid", "parameter stage is required")
    return stage


# -- endpoints --------------------------------------------------------------------


def jobs(repo: Repository, query: Query) -> Document:
    """``ckpt jobs [--status S]... [--tag K=V]... [--sizes] --json``; a job that cannot be
    read is listed as damaged (as the command lists it)."""
    from ckpt.pipeline.listing import list_jobs, parse_labels

    summaries = list_jobs(
        repo,
        statuses=list(query.get("status", ())),
        labels=parse_labels(query.get("tag", ())),
        sizes=flag(query, "sizes"),
        damaged="mark",
    )
    return {"jobs": [summary.to_json() for summary in summaries]}


def status(job: Job, query: Query) -> Document:
    """``ckpt status JOB --json``."""
    from ckpt.pipeline.listing import job_progress

    return job_progress(job).to_json()


def log(job: Job, query: Query) -> Document:
    """``ckpt log JOB [REV] [--all] -n LIMIT --json`` (LIMIT 200 unless given)."""
    from ckpt.history.documents import log_document

    all_refs = flag(query, "all")
    rev = _text(query, "rev")
    if all_refs and rev is not None:
        raise ApiError(400, "invalid", "give either rev or all, not both")
    limit = _integer(query, "limit", DEFAULT_LOG_LIMIT, minimum=1)
    return log_document(job, rev, all_refs=all_refs, limit=limit)


def show(job: Job, query: Query) -> Document:
    """``ckpt show JOB [REV] --json``."""
    from ckpt.history.documents import show_document

    return show_document(job, _text(query, "rev"))


def diff(job: Job, query: Query) -> Document:
    """``ckpt diff JOB OLD [NEW] [STAGE] [--stat] [-U CONTEXT] --json``.

    Refuses (413) to diff values larger than :data:`MAX_DIFF_BYTES` together:
    ask with ``stat=1``, or for one stage, and read the values page by page.
    """
    from ckpt.history.diff import diff_commits
    from ckpt.history.documents import diff_document

    old = _text(query, "old")
    if old is None:
        raise ApiError(400, "invalid", "parameter old is required")
    new = _text(query, "new")
    stage = _stage(query)
    stat_only = flag(query, "stat")
    context = _integer(query, "context", 3)
    if not stat_only:
        for change in diff_commits(job, old, new).changes:
            if stage is not None and change.stage != stage:
                continue
            size = sum(e.size for e in (change.old, change.new) if e is not None)
            if size > MAX_DIFF_BYTES:
                raise ApiError(
                    413,
                    "too-large",
                    f"stage {change.stage!r} is too large to diff here ({size:,} bytes); "
                    f"run: ckpt diff {job.name} {old} {new or 'HEAD'} {change.stage}",
                )
    return diff_document(job, old, new, stage, stat_only=stat_only, context=context)


def value(job: Job, query: Query) -> Document:
    """A page of a stage's value: ``length`` bytes (at most :data:`MAX_PAGE_BYTES`) of its
    canonical JSON from ``offset``, never the whole of a larger value (schema ``value``).

    A page of JSON text starts and ends on whole UTF-8 characters (``offset``
    and ``length`` in the answer say which bytes it holds); a ``bytes``
    value's page is base64.
    """
    stage = _required_stage(query)
    commit = job.resolve(_text(query, "rev"))
    entry = job.repo.objects.get_tree(commit.tree).get(stage)
    if entry is None:
        stages = ", ".join(job.stages(commit.id)) or "none"
        raise ApiError(
            404,
            "not-found",
            f"job {job.name!r} has no stage {stage!r} at {commit.short_id} (stages: {stages})",
        )
    offset = min(_integer(query, "offset", 0), entry.size)
    length = min(_integer(query, "length", PAGE_BYTES, minimum=1), MAX_PAGE_BYTES)
    raw = entry.encoding == ENCODING_RAW
    if raw:
        data = job.repo.objects.read_range(entry.id, offset, length)
    else:
        # 3 bytes more: enough to finish a character cut by the end of the page.
        more = job.repo.objects.read_range(entry.id, offset, length + 3)
        data, offset = whole_characters(more, offset, length)
    return {
        "job": job.name,
        "commit": commit.id,
        "stage": stage,
        "id": entry.id,
        "type": entry.type,
        "encoding": entry.encoding,
        "size": entry.size,
        "offset": offset,
        "length": len(data),
        "text": None if raw else data.decode("utf-8"),
        "base64": base64.b64encode(data).decode("ascii") if raw else None,
    }


def _continues(byte: int) -> bool:
    """True for a byte inside a UTF-8 character (not the first of one)."""
    return byte & 0xC0 == 0x80


def whole_characters(data: bytes, offset: int, length: int) -> tuple[bytes, int]:
    """The page of UTF-8 text in ``data`` (its bytes from ``offset``, with up to 3 more than
    ``length``): from the first character that starts in it, at most ``length`` bytes of
    whole characters (one character at least, should it be longer), and where that starts."""
    start = 0
    while start < min(3, len(data)) and _continues(data[start]):
        start += 1
    end = min(len(data), start + length)
    while start < end < len(data) and _continues(data[end]):
        end -= 1
    if end == start < len(data):  # one character longer than the page
        end += 1
        while end < len(data) and _continues(data[end]):
            end += 1
    return data[start:end], offset + start


def stats(repo: Repository, query: Query) -> Document:
    """``ckpt stats --json``."""
    from ckpt.maintenance.stats import store_stats

    return store_stats(repo).to_json()


JobEndpoint = Callable[[Job, Query], Document]

#: ``/api/jobs/JOB/NAME`` -> the endpoint that answers it.
JOB_ENDPOINTS: dict[str, JobEndpoint] = {
    "status": status,
    "log": log,
    "show": show,
    "diff": diff,
    "value": value,
}

#: Every endpoint: (method, path, parameters, what it returns), for the documentation.
ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", "/api/store", "", "`store` (below)"),
    (
        "GET",
        "/api/jobs",
        "`status` (repeatable), `tag=K=V` (repeatable), `sizes=1`",
        "[`ckpt jobs --json`](#ckpt-jobs---json)",
    ),
    ("GET", "/api/jobs/JOB/status", "", "[`ckpt status --json`](#ckpt-status---json)"),
    (
        "GET",
        "/api/jobs/JOB/log",
        f"`rev` or `all=1`, `limit` (default {DEFAULT_LOG_LIMIT})",
        "[`ckpt log --json`](#ckpt-log---json)",
    ),
    ("GET", "/api/jobs/JOB/show", "`rev`", "[`ckpt show --json`](#ckpt-show---json)"),
    (
        "GET",
        "/api/jobs/JOB/diff",
        "`old` (required), `new`, `stage`, `stat=1`, `context`",
        "[`ckpt diff --json`](#ckpt-diff---json)",
    ),
    (
        "GET",
        "/api/jobs/JOB/value",
        f"`stage` (required), `rev`, `offset`, `length` (default {PAGE_BYTES}, "
        f"at most {MAX_PAGE_BYTES})",
        "`value` (below)",
    ),
    ("GET", "/api/stats", "", "[`ckpt stats --json`](#ckpt-stats---json)"),
    ("GET", "/api/verify", "", "`verify-run` (below)"),
    ("POST", "/api/verify", "`full=1`", "`verify-run`: starts a verify unless one is running"),
    (
        "GET",
        "/api/events/jobs",
        "",
        "server-sent events: `jobs` (the whole listing, as `/api/jobs`), then "
        "`jobs-changed` (`jobs`: the changed entries, `removed`: names)",
    ),
    (
        "GET",
        "/api/events/jobs/JOB",
        "",
        "server-sent events: `job` (as `/api/jobs/JOB/status`) whenever a ref of the job "
        "moves, `gone` when it is deleted",
    ),
)

#: The documents only the dashboard serves, in the form of ``ckpt.cli.schema.SCHEMAS``.
SCHEMAS: dict[str, dict[str, tuple[str, str]]] = {
    "store": {
        "location": ("string", "the store served (a password in its URL shown as ***)"),
        "version": ("string", "ckpt's version"),
        "read_only": ("boolean", "always true: the dashboard never writes to the store"),
        "interval": ("number", "seconds between looks at the store for live updates"),
    },
    "value": {
        "job": ("string", "job name"),
        "commit": ("string", "commit id the stage was read at"),
        "stage": ("string", "stage name"),
        "id": ("string", "blob id of the value"),
        "type": ("string", "type name of the value"),
        "encoding": ("string", "`json`, or `raw` for a bytes value"),
        "size": ("integer", "canonical size of the whole value in bytes"),
        "offset": ("integer", "where this page starts, in bytes"),
        "length": ("integer", "bytes in this page"),
        "text": ("string or null", "the page of canonical JSON (null for a bytes value)"),
        "base64": ("string or null", "the page of a bytes value, base64 (else null)"),
    },
    "verify-run": {
        "running": ("boolean", "a verify is under way"),
        "full": ("boolean or null", "whether the latest run hashes every object"),
        "started": ("string or null", "when the latest run started"),
        "finished": ("string or null", "when it finished"),
        "jobs_done": ("integer", "jobs checked so far"),
        "jobs_total": ("integer", "jobs to check"),
        "report": ("object or null", "its report, as `ckpt verify --json`"),
        "error": ("string or null", "why it could not run"),
    },
    "error": {
        "error": ("object", "any answer other than 200"),
        "error.kind": (
            "string",
            "not-found (404), invalid (400, or 405 for a method the path does not take), "
            "forbidden (403: a request naming another host, or a POST from another site), "
            "damaged (422: a corrupt or missing object or ref), conflict (409), too-large "
            "(413), storage (503: the backend failed), internal (500)",
        ),
        "error.message": ("string", "what is wrong, in one line"),
        "error.status": ("integer", "the HTTP status"),
    },
}
