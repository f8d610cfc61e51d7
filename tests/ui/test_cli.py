"""``ckpt ui`` on the command line, and the static files it ships."""

from __future__ import annotations

import fnmatch
import re
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from ckpt.cli.exits import ExitCode
from ckpt.cli.main import cli
from ckpt.ui.server import static_files

from .conftest import ckpt_environment, request

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "ckpt" / "ui" / "static"


def test_a_host_that_is_not_loopback_needs_allow_remote(store: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(store), "ui", "--host", "0.0.0.0"])
    assert result.exit_code == ExitCode.USAGE
    assert "Error: --host 0.0.0.0 is not loopback: the dashboard has no authentication" in (
        result.stderr
    )
    assert "add --allow-remote to serve it anyway" in result.stderr


def test_allow_remote_warns_then_serves_until_interrupted(store: Path) -> None:
    command = ["ui", "--host", "0.0.0.0", "--allow-remote", "--no-open"]
    process = subprocess.Popen(
        [sys.executable, "-m", "ckpt", "--store", str(store), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ckpt_environment(),
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = process.stdout.readline()
        found = re.fullmatch(
            r"Serving (\S+) at http://0\.0\.0\.0:(\d+)/ \(Ctrl-C to stop\)\n", line
        )
        assert found is not None, line
        assert found.group(1) == str(store)
        warning = process.stderr.readline()
        assert warning.startswith("Warning: serving on 0.0.0.0 with no authentication")
        port = int(found.group(2))
        # Any Host is answered: the server cannot know the names it is reached by.
        status, _, _ = request(
            f"http://127.0.0.1:{port}/", "/api/jobs", headers={"Host": "dashboard.lan"}
        )
        assert status == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert out == "Stopped.\n"


def test_no_store_and_a_taken_port_are_one_line_errors(store: Path, tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["--store", str(tmp_path / "none"), "ui", "--no-open"])
    assert missing.exit_code == ExitCode.NO_STORE
    assert missing.stderr.startswith("Error: no ckpt store at ")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = CliRunner().invoke(cli, ["--store", str(store), "ui", "--port", str(port)])
    assert busy.exit_code == ExitCode.ERROR
    assert busy.stderr.startswith(f"Error: cannot serve on 127.0.0.1 port {port}: ")
    assert len(busy.stderr.splitlines()) == 1


def test_the_pages_scripts_and_styles_are_all_shipped() -> None:
    shipped = static_files()
    assert set(shipped) == {p.name for p in STATIC.iterdir()}
    page = shipped["index.html"][0].decode()
    wanted = set(re.findall(r'(?:href|src)="/static/([^"]+)"', page))
    for name, (content, content_type) in shipped.items():
        if name.endswith(".js"):
            assert content_type.startswith("text/javascript")
            wanted |= set(re.findall(r'from "\./([^"]+)"', content.decode()))
    assert wanted <= set(shipped), wanted - set(shipped)
    assert {"app.js", "style.css", "favicon.svg", "job.js", "graph.js"} <= wanted


def test_a_non_editable_install_includes_the_static_files() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["ckpt.ui"]
    for path in STATIC.iterdir():
        relative = path.relative_to(STATIC.parent).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
