"""The dashboard's JSON API: the documents of the CLI's --json, paging, names, damage, safety."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import ckpt
from ckpt.cli.main import cli
from ckpt.cli.schema import field_paths
from ckpt.objects.ids import Kind
from ckpt.ui import api
from ckpt.ui.server import Dashboard
from tests.objects._helpers import flip

from .conftest import get_json, request, wait_until


def cli_json(store: Path, *args: str) -> object:
    result = CliRunner().invoke(cli, ["--store", str(store), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("path", "command"),
    [
        ("/api/jobs", ["jobs"]),
        ("/api/jobs?status=completed", ["jobs", "--status", "completed"]),
        ("/api/jobs?tag=genre%3Dfantasy&sizes=1", ["jobs", "--tag", "genre=fantasy", "--sizes"]),
        ("/api/jobs/novel/status", ["status", "novel"]),
        ("/api/jobs/novel/log?all=1", ["log", "novel", "--all"]),
        ("/api/jobs/novel/log?rev=alt&limit=1", ["log", "novel", "alt", "-n", "1"]),
        ("/api/jobs/novel/show?rev=v1", ["show", "novel", "v1"]),
        ("/api/jobs/novel/diff?old=alt&new=main", ["diff", "novel", "alt", "main"]),
        ("/api/jobs/novel/diff?old=alt&stat=1", ["diff", "novel", "alt", "--stat"]),
        (
            "/api/jobs/novel/diff?old=alt&new=main&stage=characters&context=0",
            ["diff", "novel", "alt", "main", "characters", "-U", "0"],
        ),
        ("/api/stats", ["stats"]),
    ],
)
def test_each_endpoint_returns_the_document_of_the_cli(
    dashboard: Dashboard, store: Path, path: str, command: list[str]
) -> None:
    status, doc = get_json(dashboard.url, path)
    assert status == 200, doc
    assert doc == cli_json(store, *command)


def test_the_documents_only_the_dashboard_serves_match_their_schemas(
    dashboard: Dashboard, store: Path
) -> None:
    with ckpt.open(store, durable=False) as repo:
        repo.job("blob").save("bytes", b"\x00\x01binary")
    seen = field_paths(get_json(dashboard.url, "/api/store")[1], api.SCHEMAS["store"])
    assert seen == set(api.SCHEMAS["store"])
    seen = field_paths(
        get_json(dashboard.url, "/api/jobs/novel/value?stage=outline")[1], api.SCHEMAS["value"]
    )
    seen |= field_paths(
        get_json(dashboard.url, "/api/jobs/blob/value?stage=bytes")[1], api.SCHEMAS["value"]
    )
    assert seen == set(api.SCHEMAS["value"])
    status, _ = get_json(dashboard.url, "/api/verify?full=1", method="POST")
    assert status == 202
    run = wait_until(
        lambda: (doc := get_json(dashboard.url, "/api/verify")[1])["finished"] and doc,
        what="verify",
    )
    assert field_paths(run, api.SCHEMAS["verify-run"]) <= set(api.SCHEMAS["verify-run"])
    assert run["report"] == cli_json(store, "verify", "--full")
    missing = get_json(dashboard.url, "/api/jobs/nobody/status")[1]
    assert field_paths(missing, api.SCHEMAS["error"]) == set(api.SCHEMAS["error"])


def test_every_route_answers(dashboard: Dashboard) -> None:
    """The documented routes (docs/cli.md lists :data:`api.ROUTES`) all exist."""
    for method, path, _params, _doc in api.ROUTES:
        url = path.replace("JOB", "novel")
        if url.endswith("/value"):
            url += "?stage=outline"
        if url.endswith("/diff"):
            url += "?old=alt"
        if url.startswith("/api/events/"):
            continue  # streams: see test_live.py
        status, _ = get_json(dashboard.url, url, method=method)
        assert status in (200, 202), (method, url)


def test_head_answers_without_a_body_even_for_a_stream(dashboard: Dashboard) -> None:
    for path in ("/", "/api/jobs", "/api/events/jobs"):
        status, body, headers = request(dashboard.url, path, method="HEAD", timeout=10)
        assert (status, body) == (200, b""), path
    assert headers["content-type"].startswith("text/event-stream")


def test_a_large_value_is_served_a_page_at_a_time(dashboard: Dashboard, store: Path) -> None:
    # Non-ASCII text, so that pages must start and end on whole characters.
    value = [f"Kapitel {n}: Þórður und Ærøskøbing — {n * 7919 % 10007}" for n in range(60_000)]
    with ckpt.open(store, durable=False) as repo:
        job = repo.job("big")
        job.save("chapters", value)
        entry = job.tree().get("chapters")
        assert entry is not None
        whole = repo.objects.get(entry.id, Kind.BLOB)
    assert entry.size > 2 * api.MAX_PAGE_BYTES
    first = get_json(dashboard.url, "/api/jobs/big/value?stage=chapters")[1]
    assert (first["offset"], first["size"]) == (0, entry.size)
    assert 0 < first["length"] <= api.PAGE_BYTES
    # Asking for everything still gives at most one page.
    asked = get_json(dashboard.url, f"/api/jobs/big/value?stage=chapters&length={entry.size}")[1]
    assert asked["length"] <= api.MAX_PAGE_BYTES
    pieces, offset = [], 0
    while offset < entry.size:
        page = get_json(
            dashboard.url, f"/api/jobs/big/value?stage=chapters&offset={offset}&length=300000"
        )[1]
        assert page["offset"] == offset and page["length"] > 0
        pieces.append(page["text"].encode("utf-8"))
        offset += page["length"]
    assert b"".join(pieces) == whole
    # A page asked for in the middle of a character starts after it.
    cut = whole.index("Þ".encode()) + 1
    page = get_json(dashboard.url, f"/api/jobs/big/value?stage=chapters&offset={cut}&length=50")[1]
    assert page["offset"] == cut + 1 and 0 < page["length"] <= 50
    assert page["text"].encode() == whole[cut + 1 : cut + 1 + page["length"]]


@pytest.mark.parametrize(
    ("text", "offset", "length", "page"),
    [
        ("aÞb", 0, 2, "a"),  # Þ is 2 bytes: it does not fit
        ("aÞb", 0, 3, "aÞ"),
        ("aÞb", 2, 5, "b"),  # starts inside Þ
        ("Þ—x", 0, 1, "Þ"),  # one character at least, even longer than the page
        ("—", 1, 1, ""),  # nothing starts in it
        ("abc", 1, 1, "b"),
    ],
)
def test_a_page_of_text_holds_whole_characters(
    text: str, offset: int, length: int, page: str
) -> None:
    data = text.encode()
    found, start = api.whole_characters(data[offset : offset + length + 3], offset, length)
    assert found.decode() == page
    assert data[start : start + len(found)] == found


def test_a_bytes_value_is_paged_as_base64(dashboard: Dashboard, store: Path) -> None:
    data = bytes(range(256)) * 10
    with ckpt.open(store, durable=False) as repo:
        repo.job("blob").save("bytes", data)
    page = get_json(dashboard.url, "/api/jobs/blob/value?stage=bytes&offset=10&length=20")[1]
    assert page["encoding"] == "raw" and page["text"] is None
    assert base64.b64decode(page["base64"]) == data[10:30]


def test_a_diff_of_values_too_large_is_refused(
    dashboard: Dashboard, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "MAX_DIFF_BYTES", 20)
    status, doc = get_json(dashboard.url, "/api/jobs/novel/diff?old=alt&new=main")
    assert status == 413
    assert doc["error"]["kind"] == "too-large"
    assert "ckpt diff novel alt main characters" in doc["error"]["message"]
    status, _ = get_json(dashboard.url, "/api/jobs/novel/diff?old=alt&new=main&stat=1")
    assert status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server.py",
        "/static/..%2Fserver.py",
        "/static/..%2F..%2F..%2Fetc%2Fpasswd",
        "/jobs/../store",
        "/jobs/..%2F..%2Fetc%2Fpasswd",
        "/jobs/.hidden",
        "/static/%2e%2e/api.py",
        "/static/nothing.js",
    ],
)
def test_a_path_outside_the_pages_is_a_404(dashboard: Dashboard, path: str) -> None:
    status, body, _ = request(dashboard.url, path)
    assert status == 404
    assert b"Not found" in body
    assert b"import" not in body and b"root:" not in body


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/jobs/..%2F..%2Fetc/log", "not-found"),
        ("/api/jobs/nobody/log", "not-found"),
        ("/api/jobs/novel/nothing", "not-found"),
        ("/api/nothing", "not-found"),
        ("/api/jobs/novel/value?stage=..%2Fsecret", "invalid"),
        ("/api/jobs/novel/value?stage=missing", "not-found"),
        ("/api/jobs/novel/value", "invalid"),
        ("/api/jobs/novel/log?rev=no-such-branch", "not-found"),
        ("/api/jobs/novel/log?limit=zero", "invalid"),
        ("/api/jobs/novel/log?all=maybe", "invalid"),
        ("/api/jobs/novel/diff", "invalid"),
        ("/api/jobs?status=paused", "error"),
    ],
)
def test_bad_input_is_a_one_line_error(dashboard: Dashboard, path: str, kind: str) -> None:
    status, doc = get_json(dashboard.url, path)
    expected = {"not-found": 404, "invalid": 400, "error": 400}[kind]
    assert (status, doc["error"]["kind"]) == (expected, kind), doc
    assert doc["error"]["status"] == status
    assert "\n" not in doc["error"]["message"] and doc["error"]["message"]


def test_pages_exist_for_jobs_that_exist(dashboard: Dashboard) -> None:
    for path in ("/", "/store", "/jobs/novel", "/jobs/novel/"):
        status, body, headers = request(dashboard.url, path)
        assert status == 200, path
        assert headers["content-type"].startswith("text/html")
        assert b'<main id="app">' in body
        assert "script-src 'self'" in headers["content-security-policy"]
    status, body, _ = request(dashboard.url, "/jobs/nobody")
    assert status == 404 and b"job &#x27;nobody&#x27; not found" in body


def test_a_damaged_store_shows_the_damage(dashboard: Dashboard, store: Path) -> None:
    with ckpt.open(store, durable=False) as repo:
        broken = repo.job("broken")
        head = broken.save("only", {"x": 1})
        flip(repo.storage, repo.objects, head.id)
    status, doc = get_json(dashboard.url, "/api/jobs")
    assert status == 200
    listed = {job["name"]: job for job in doc["jobs"]}
    assert listed["broken"]["status"] == "damaged" and head.id in listed["broken"]["damage"]
    assert listed["novel"]["status"] == "active"
    for path in ("log?all=1", "status", "show"):
        status, doc = get_json(dashboard.url, f"/api/jobs/broken/{path}")
        assert status == 422, path
        assert doc["error"]["kind"] == "damaged" and head.id in doc["error"]["message"]
    assert request(dashboard.url, "/jobs/broken")[0] == 200  # the page shows the damage
    get_json(dashboard.url, "/api/verify", method="POST")
    run = wait_until(
        lambda: (doc := get_json(dashboard.url, "/api/verify")[1])["finished"] and doc,
        what="verify",
    )
    assert not run["report"]["ok"]
    assert run["report"]["problems"][0]["jobs"] == ["broken"]


def test_only_loopback_names_are_answered_and_posts_only_from_the_page(
    dashboard: Dashboard,
) -> None:
    port = dashboard.port
    for host, status in [
        (f"localhost:{port}", 200),
        (f"127.0.0.1:{port}", 200),
        (f"[::1]:{port}", 200),
        (f"LOCALHOST:{port}", 200),
        (f"evil.example:{port}", 403),  # a DNS name rebound to 127.0.0.1
        (f"127.0.0.1:{port + 1}", 403),
        ("localhost", 403),  # port 80
    ]:
        assert request(dashboard.url, "/api/jobs", headers={"Host": host})[0] == status, host
    status, doc = get_json(
        dashboard.url, "/api/verify", method="POST", headers={"Origin": "http://evil.example"}
    )
    assert status == 403 and doc["error"]["kind"] == "forbidden"
    status, _ = get_json(
        dashboard.url,
        "/api/verify",
        method="POST",
        headers={"Origin": f"http://127.0.0.1:{port}"},
    )
    assert status == 202
    status, doc = get_json(dashboard.url, "/api/jobs", method="POST")
    assert status == 405


def test_a_host_that_is_not_loopback_must_be_allowed(store: Path) -> None:
    with pytest.raises(ckpt.CkptError, match="not loopback: the dashboard has no authentication"):
        Dashboard(str(store), host="0.0.0.0")
    with pytest.raises(ckpt.StoreNotFoundError):
        Dashboard(str(store / "nothing"))
