"""Fixtures of the dashboard tests: a store with sample jobs, the dashboard serving it (in
this process, or as a real ``ckpt ui`` process), HTTP helpers, and a headless Chromium.

The browser is Debian's ``chromium``, driven through ``chromedriver`` by
Selenium; nothing is downloaded.  Where it is not installed or cannot
start, the browser tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import ckpt
from ckpt.ui.server import Dashboard
from tests import servers

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)
RUN = Path(__file__).with_name("_run.py")
INTERVAL = ("--interval", "0.1")


def sample_jobs(path: Path) -> None:
    """Jobs ``novel`` (branch ``alt`` forked at ``outline`` with other characters, tag
    ``v1``, labels) and ``draft`` (completed) in the store at ``path``."""
    with ckpt.open(path, durable=False) as repo:
        novel = repo.job("novel")
        novel.save("outline", {"title": "Vell", "chapters": 3}, cost=0.25, tokens=1000)
        novel.save("characters", ["Ida", "Tomas"], cost=0.5, tokens=2000)
        novel.save("chapters", [{"n": 1, "words": 2400}], cost=1.25, tokens=40000)
        novel.set_labels(genre="fantasy")
        novel.tag("v1", "characters")
        novel.checkout("outline", new_branch="alt")
        novel.save("characters", ["Ida", "Marek", "Suvi"], cost=0.75, tokens=2500)
        novel.switch("main")
        draft = repo.job("draft")
        draft.save("outline", {"title": "Short"}, cost=0.1, tokens=300)
        draft.complete()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    ckpt.init(path, durable=False).close()
    sample_jobs(path)
    return path


@pytest.fixture
def dashboard(store: Path) -> Iterator[Dashboard]:
    """The dashboard of ``store``, served from this process on a free loopback port."""
    with Dashboard(str(store), interval=0.05).start() as served:
        yield served


def request(
    url: str,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes, dict[str, str]]:
    """Send ``METHOD path`` (as given: nothing is normalised) to the server at ``url``."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=timeout)
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read(), {k.lower(): v for k, v in answer.getheaders()}
    finally:
        connection.close()


def get_json(url: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """``GET path`` (or another method); the status and the parsed JSON body."""
    status, body, headers = request(url, path, **kwargs)
    assert headers["content-type"].startswith("application/json"), (path, status, body[:200])
    return status, json.loads(body)


class EventStream:
    """The server-sent events of the stream at ``path``, read by a thread of its own into
    :attr:`events` as (name, data) until :meth:`close`."""

    def __init__(self, url: str, path: str) -> None:
        where = urlsplit(url)
        self.connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=60)
        self.connection.request("GET", path)
        self.socket = self.connection.sock
        self.answer = self.connection.getresponse()
        assert self.answer.status == 200, self.answer.read()
        assert self.answer.getheader("Content-Type", "").startswith("text/event-stream")
        self.events: list[tuple[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        name, data = "message", ""
        try:
            for raw in self.answer:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    data = line[len("data: ") :]
                elif not line and data:
                    self.events.append((name, json.loads(data)))
                    name, data = "message", ""
        except (OSError, ValueError):
            pass  # closed

    def wait_for(self, what: str, predicate: Any, timeout: float = 30) -> tuple[str, Any]:
        """The first event (name, data) for which ``predicate(name, data)`` holds."""
        return wait_until(
            lambda: next((e for e in list(self.events) if predicate(*e)), None), timeout, what
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)  # ends the reading thread's read
        self.thread.join(timeout=10)
        self.answer.close()
        self.connection.close()


# -- a real `ckpt ui` process and a pipeline run beside it --------------------------


def ckpt_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


@pytest.fixture
def ui_process(store: Path) -> Iterator[str]:
    """``ckpt ui`` serving ``store`` in a process of its own; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ckpt", "--store", str(store), "ui", "--no-open", *INTERVAL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ckpt_environment(),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"at (http://\S+/) \(Ctrl-C to stop\)", line)
    if found is None:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"ckpt ui did not start: {line!r} {err}")
    try:
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


class Run:
    """The pipeline of ``_run.py`` on job ``job``, in a process of its own, advanced a stage
    at a time with :meth:`advance`."""

    def __init__(self, store: Path, job: str, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.step = 0
        self.process = subprocess.Popen(
            [sys.executable, str(RUN), str(store), job, str(workdir)],
            env=ckpt_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def advance(self) -> None:
        """Let the next stage run."""
        self.step += 1
        (self.workdir / f"go-{self.step}").write_text("go")

    def finish(self, timeout: float = 60) -> None:
        while self.step < 4:
            self.advance()
        _, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err.decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@pytest.fixture
def pipeline_run(store: Path, tmp_path: Path) -> Iterator[Run]:
    """A pipeline run of job ``running`` on ``store``, waiting for its first stage."""
    run = Run(store, "running", tmp_path / "run")
    try:
        yield run
    finally:
        run.stop()


def wait_until(condition: Any, timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``condition()`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- the browser ------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium driven by Selenium through Debian's chromedriver."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        servers.unavailable("selenium is not installed (pip install 'ckpt[test]')")
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        servers.unavailable(
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        # Selenium must not look for (or fetch) a driver or a browser of its own.
        patch.setenv("SE_OFFLINE", "true")
        try:
            driver = webdriver.Chrome(service=Service(driver_path), options=options)
        except WebDriverException as exc:
            servers.unavailable(f"Chromium could not start: {exc.msg}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
