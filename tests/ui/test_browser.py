"""The dashboard in a real headless Chromium, served by a real ``ckpt ui`` process.

The screenshots in docs/ui.md are taken here: with ``CKPT_UI_SCREENSHOTS=1``
the tests write them to docs/ (otherwise to a temporary directory).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ckpt
from ckpt.objects.ids import Kind
from ckpt.ui import api
from tests.objects._helpers import flip

from .conftest import Run, wait_until

DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.usefixtures("browser")


def screenshot(browser: Any, name: str, tmp_path: Path, height: int = 1000) -> Path:
    """Save the window as ``ui-NAME.png``: in docs/ with ``CKPT_UI_SCREENSHOTS=1``."""
    folder = DOCS if os.environ.get("CKPT_UI_SCREENSHOTS") else tmp_path
    path = folder / f"ui-{name}.png"
    # The store is in a temporary directory: show it as a user's would read.
    browser.execute_script("document.getElementById('store-location').textContent = '.ckpt';")
    browser.set_window_size(1400, height)
    try:
        assert browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(1400, 1000)
    assert path.stat().st_size > 10_000
    return path


def find(browser: Any, css: str, timeout: float = 30) -> Any:
    """The first element matching ``css``, once there is one."""
    return wait_until(lambda: browser.find_elements("css selector", css), timeout, css)[0]


def find_all(browser: Any, css: str) -> list[Any]:
    return list(browser.find_elements("css selector", css))


def texts(browser: Any, css: str) -> list[str]:
    """The text of every element matching ``css``, read at once (the live pages redraw
    their rows, which makes element handles go stale)."""
    found: list[str] = browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);", css
    )
    return found


def attributes(browser: Any, css: str, name: str) -> list[str | None]:
    """Attribute ``name`` of every element matching ``css``, read at once."""
    found: list[str | None] = browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map(e => e.getAttribute(arguments[1]));",
        css,
        name,
    )
    return found


def text_of(browser: Any, css: str) -> Callable[[], str]:
    def read() -> str:
        found = texts(browser, css)
        return found[0] if found else ""

    return read


def script_errors(browser: Any) -> list[str]:
    """Errors the page's scripts logged (answers other than 200 are expected in some tests)."""
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
    ]


@pytest.fixture
def page(browser: Any, ui_process: str) -> Callable[[str], None]:
    """Open ``ckpt ui``'s page at a path."""
    browser.get_log("browser")  # forget what earlier tests logged

    def open_page(path: str = "") -> None:
        browser.get(ui_process + path)

    yield open_page
    assert script_errors(browser) == []


def more_jobs(store: Path) -> None:
    """A few more jobs, so that the jobs page shows every status."""
    with ckpt.open(store, durable=False) as repo:
        failed = repo.job("novel-43")
        failed.save("outline", {"title": "Storm"}, cost=0.2, tokens=1500)
        failed.set_labels(genre="crime")
        failed.fail("API timeout after 120 s", stage="characters")
        agent = repo.job("agent-7")
        for step in range(6):
            agent.save("state", {"step": step, "notes": "x" * 40 * step}, cost=0.05, tokens=900)
        agent.set_labels(owner="ana")
        agent.complete()


def test_the_jobs_page_lists_the_jobs_and_sorts_and_filters_them(
    browser: Any, page: Callable[[str], None], store: Path
) -> None:
    more_jobs(store)
    page("")
    find(browser, "tr[data-job='novel']")
    cells = texts(browser, "tr[data-job='novel'] td")
    assert cells[:6] == ["novel", "active", "3", "$2.00", "43,000", "just now"]
    assert cells[8] == "genre=fantasy"
    assert texts(browser, "tr[data-job='novel-43'] td")[1] == "failed"
    find(browser, "th[data-sort='name']").click()
    names = attributes(browser, "tr[data-job]", "data-job")
    assert names == ["agent-7", "draft", "novel", "novel-43"]
    find(browser, "#jobs-filter").send_keys("owner=ana")
    wait_until(
        lambda: attributes(browser, "tr[data-job]", "data-job") == ["agent-7"], what="the filter"
    )


def test_a_run_in_another_process_advances_on_the_page_without_reloading(
    browser: Any, page: Callable[[str], None], pipeline_run: Run, store: Path, tmp_path: Path
) -> None:
    more_jobs(store)
    page("")
    find(browser, "tr[data-job='novel']")
    browser.execute_script("window.notReloaded = true;")
    progress = text_of(browser, "tr[data-job='running'] .progress-text")
    for done in (1, 2):
        pipeline_run.advance()
        wait_until(lambda d=done: progress() == f"{d}/4", what=f"{done} of 4 stages on the page")
    assert find(browser, "#live").get_attribute("class") == "live on"
    screenshot(browser, "jobs", tmp_path)
    # The job page follows the run too.
    page("jobs/running")
    find(browser, "svg#graph")
    browser.execute_script("window.notReloaded = true;")
    pipeline_run.advance()
    wait_until(lambda: text_of(browser, "#job-status .progress-text")() == "3/4", what="3 of 4")
    wait_until(
        lambda: "chapters" in attributes(browser, "g.row", "data-stage"),
        what="the new checkpoint in the graph",
    )
    pipeline_run.finish()
    wait_until(lambda: text_of(browser, "#job-status .status")() == "completed", what="completion")
    assert browser.execute_script("return window.notReloaded;") is True


def test_the_job_page_draws_the_graph_with_a_branch(
    browser: Any, page: Callable[[str], None]
) -> None:
    page("jobs/novel")
    find(browser, "svg#graph .node")
    lanes = attributes(browser, "svg#graph .node", "data-lane")
    assert len(lanes) == 4  # outline, characters, chapters on main; characters on alt
    assert set(lanes) == {"0", "1"}
    assert len(find_all(browser, "svg#graph path.edge")) == 3
    assert set(texts(browser, "svg#graph text.ref")) == {"HEAD -> main", "alt", "tag: v1"}
    # The head is selected: its stages, then a value.
    wait_until(lambda: "chapters" in text_of(browser, "#stages")(), what="the stages")
    assert len(find_all(browser, "#chart-cost rect.bar-cost")) == 3
    find(browser, "svg#graph g.row[data-stage='characters'] rect.ref-branch")
    browser.execute_script(
        "document.querySelector(\"svg#graph g.row[data-stage='characters'] rect.ref-branch\")"
        ".closest('g.row').dispatchEvent(new MouseEvent('click', {bubbles: true}));"
    )
    wait_until(lambda: "alt" in text_of(browser, "#checkpoint dl")(), what="the alt checkpoint")
    find(browser, "#stages tr[data-stage='characters'] button.view").click()
    wait_until(lambda: "Marek" in text_of(browser, "#value-viewer")(), what="the value")


def test_the_diff_view_shows_a_changed_stage(
    browser: Any, page: Callable[[str], None], tmp_path: Path
) -> None:
    page("jobs/novel")
    find(browser, "svg#graph .node")
    old = find(browser, "#diff-old")
    wait_until(lambda: old.get_attribute("value") == "alt", what="the branches to compare")
    assert find(browser, "#diff-new").get_attribute("value") == "main"
    find(browser, "#diff-go").click()
    changed = find(browser, "details.diff-stage[data-stage='characters']")
    assert changed.get_attribute("data-change") == "changed"
    assert find(browser, "details.diff-stage[data-stage='chapters']").get_attribute(
        "data-change"
    ) == ("added")
    lines = "details.diff-stage[data-stage='characters']"
    wait_until(lambda: texts(browser, f"{lines} .diff-add"), what="the diff lines")
    added = texts(browser, f"{lines} .diff-add")
    removed = texts(browser, f"{lines} .diff-del")
    assert any("Tomas" in line for line in added)
    assert any("Marek" in line for line in removed)
    find(browser, "#stages tr[data-stage='outline'] button.view").click()
    wait_until(lambda: "Vell" in text_of(browser, "#value-viewer")(), what="the value")
    screenshot(browser, "job", tmp_path, height=1700)


def test_a_url_with_dot_dot_is_refused(
    browser: Any, page: Callable[[str], None], ui_process: str
) -> None:
    for path in (
        "jobs/..%2F..%2Fetc%2Fpasswd",
        "static/..%2Fserver.py",
        "static/../../etc/passwd",
        "jobs/../../etc/passwd",
    ):
        page(path)
        assert find(browser, "h1").text == "Not found", path
        assert "root:" not in browser.page_source and "import" not in browser.page_source
    page("")
    find(browser, "tr[data-job]")
    status = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch('/api/jobs/..%2F..%2Fetc%2Fpasswd/log')"
        ".then(r => r.json().then(d => done([r.status, d.error.kind])));"
    )
    assert status == [404, "not-found"]


def test_a_large_value_reaches_the_page_a_page_at_a_time(
    browser: Any, page: Callable[[str], None], store: Path
) -> None:
    with ckpt.open(store, durable=False) as repo:
        job = repo.job("big")
        job.save("chapters", [f"chapter {n}: " + "lorem ipsum " * 20 for n in range(12_000)])
        entry = job.tree().get("chapters")
        assert entry is not None
        whole = repo.objects.get(entry.id, Kind.BLOB)
    assert entry.size > 2 * api.MAX_PAGE_BYTES
    page("jobs/big")
    find(browser, "#stages tr[data-stage='chapters'] button.view").click()
    where = text_of(browser, "#value-viewer .page-where")
    pages = -(-entry.size // api.PAGE_BYTES)
    wait_until(lambda: where().strip().startswith(f"Page 1 of {pages}:"), what="the first page")
    assert '"chapter 0: lorem ipsum' in text_of(browser, "#value-page")()
    find(browser, "#value-viewer button.page-next").click()
    wait_until(lambda: where().strip().startswith(f"Page 2 of {pages}:"), what="the second page")
    received = browser.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('/value?')).map(e => e.encodedBodySize);"
    )
    assert len(received) == 2
    assert max(received) < 2 * api.PAGE_BYTES < len(whole) / 10


def test_the_store_page_shows_the_figures_and_the_damage(
    browser: Any, page: Callable[[str], None], store: Path, tmp_path: Path
) -> None:
    more_jobs(store)
    with ckpt.open(store, durable=False) as repo:
        job = repo.job("novel")
        entry = job.tree().get("chapters")
        assert entry is not None
        last_good = job.resolve("characters").id
        flip(repo.storage, repo.objects, entry.id)
    page("store")
    wait_until(lambda: "objects" in text_of(browser, "#stats")(), what="the figures")
    assert "dedup" in text_of(browser, "#stats")()
    find(browser, "#verify-report .report")  # the first, quick run: values only checked to exist
    find(browser, "#verify-full").click()
    report = find(browser, "#verify-report .report.broken")
    assert "corrupt-object" in report.text
    branch = find(browser, ".broken-job[data-job='novel'] li[data-branch]")
    assert branch.get_attribute("data-branch") == "main"  # alt's head is intact
    assert f"ckpt checkout novel {last_good[:12]}" in branch.text
    link = branch.find_element("css selector", "a[href*='commit=']")
    assert link.get_attribute("href").endswith(f"/jobs/novel?commit={last_good}")
    screenshot(browser, "store", tmp_path, height=1100)
    # The damaged value says so where it is read.
    page("jobs/novel")
    find(browser, "#stages tr[data-stage='chapters'] button.view").click()
    alert = find(browser, "#value-viewer .error.damaged")
    assert entry.id in alert.text and "The store is damaged" in alert.text
