"""The root command: help, version, store discovery, error mapping, colour, lazy imports."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import ckpt
from ckpt import errors
from ckpt.cli.exits import ExitCode, JobFailedError, UserError, exit_code_for
from ckpt.cli.main import COMMAND_MODULES, cli
from ckpt.history.job import Job

from .conftest import Run

ALL_COMMANDS = [name for _, _, names in COMMAND_MODULES for name in names]


def test_help_lists_every_command_by_section_and_the_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ALL_COMMANDS:
        assert f"\n  {name} " in result.output
    for _, title, _ in COMMAND_MODULES:
        assert f"\n{title}:\n" in result.output
    assert "Exit status:\n  0    success\n" in result.output
    assert "  5    damage: verify found problems" in result.output
    assert "  130  interrupted (Ctrl-C)" in result.output
    assert "CKPT_DIR" in result.output and "NO_COLOR" in result.output


def test_help_summaries_are_whole_sentences_on_one_line_at_80_columns() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=80)
    commands = result.output.split("\nGetting started:\n")[1].split("\nExit status:\n")[0]
    rows = [line for line in commands.splitlines() if line.startswith("  ")]
    assert [row.split()[0] for row in rows] == ALL_COMMANDS  # no summary wrapped
    for row in rows:
        assert "..." not in row and row.rstrip().endswith("."), row
    assert "  init        Create an empty store (default: ./.ckpt).\n" in result.output


def test_every_command_has_help() -> None:
    for name in ALL_COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert result.output.startswith(f"Usage: cli {name} ") or result.output.startswith(
            f"Usage: ckpt {name} "
        ), result.output


def test_command_table_matches_the_modules() -> None:
    for module_name, _, names in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        defined = sorted(v.name for v in vars(module).values() if isinstance(v, click.Command))
        assert defined == sorted(names), module_name


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"ckpt {ckpt.__version__}\n"


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["lgo"])
    assert result.exit_code == ExitCode.USAGE
    assert "Error: No such command 'lgo'." in result.stderr


def test_missing_argument_is_a_usage_error(run: Run) -> None:
    result = run("show")
    assert result.exit_code == ExitCode.USAGE
    assert "Error: Missing argument 'JOB' (or set a current job: `ckpt use JOB`" in result.stderr


def test_no_store_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["log", "novel"])
    assert result.exit_code == ExitCode.NO_STORE
    assert result.stdout == ""
    assert result.stderr == (
        "Error: no ckpt store found in this directory or any parent "
        "(run `ckpt init`, or pass --store / set CKPT_DIR)\n"
    )


def test_store_flag_naming_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(cli, ["--store", str(missing), "jobs"])
    assert result.exit_code == ExitCode.NO_STORE
    assert result.stderr == (
        f"Error: no ckpt store at {missing} (run `ckpt init {missing}` to create one)\n"
    )


def test_store_is_found_from_env_then_parent_directories(
    tmp_path: Path, store: Path, novel: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    found = CliRunner().invoke(cli, ["jobs", "--json"])
    assert found.exit_code == 0
    assert '"name": "novel"' in found.stdout

    other = tmp_path / "other"
    ckpt.init(other).close()
    monkeypatch.setenv("CKPT_DIR", str(other))
    from_env = CliRunner().invoke(cli, ["jobs", "--json"])
    assert from_env.exit_code == 0
    assert '"jobs": []' in from_env.stdout

    flag_wins = CliRunner().invoke(cli, ["--store", str(store), "jobs", "--json"])
    assert '"name": "novel"' in flag_wins.stdout


def test_debug_shows_the_traceback(run: Run) -> None:
    plain = run("log", "nosuch")
    assert "Traceback" not in plain.output
    assert plain.stderr.count("\n") == 1

    debug = run("--debug", "log", "nosuch")
    assert debug.exit_code == ExitCode.NOT_FOUND
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.endswith("\n" + plain.stderr)


def test_debug_from_environment(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPT_DEBUG", "1")
    assert "Traceback" in run("log", "nosuch").stderr


def test_unexpected_error_is_one_line_with_a_hint(
    run: Run, novel: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ckpt.pipeline.listing

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ckpt.pipeline.listing, "list_jobs", broken)
    result = run("jobs")
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr == (
        "Error: internal error: RuntimeError: boom "
        "(run with --debug for the traceback, and please report it)\n"
    )


def test_interrupt_exits_130(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    import ckpt.pipeline.listing

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.pipeline.listing, "list_jobs", interrupted)
    result = run("jobs")
    assert result.exit_code == ExitCode.INTERRUPTED
    assert result.stderr == "\nInterrupted.\n"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.StoreNotFoundError("x"), ExitCode.NO_STORE),
        (errors.InvalidNameError("x"), ExitCode.USAGE),
        (UserError("x"), ExitCode.USAGE),
        (errors.NotFoundError("x"), ExitCode.NOT_FOUND),
        (errors.InvalidRevisionError("x"), ExitCode.NOT_FOUND),
        (errors.ConflictError("x"), ExitCode.CONFLICT),
        (errors.StoreExistsError("x"), ExitCode.CONFLICT),
        (errors.CorruptObjectError("ab" * 32, "bad"), ExitCode.DAMAGED),
        (errors.ObjectNotFoundError("ab" * 32), ExitCode.DAMAGED),
        (errors.CorruptRefError("x"), ExitCode.DAMAGED),
        (errors.SerializationError("x"), ExitCode.ERROR),
        (errors.StorageError(5, "x"), ExitCode.ERROR),
        (JobFailedError("x"), ExitCode.ERROR),
        (errors.CkptError("x"), ExitCode.ERROR),
        (RuntimeError("x"), ExitCode.ERROR),
    ],
)
def test_exit_code_mapping(error: BaseException, code: ExitCode) -> None:
    assert exit_code_for(error) == code


def test_colour_on_a_terminal_and_never_with_no_color(
    run: Run, novel: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CliRunner(color=True) makes click treat the output as a colour terminal.
    assert "\x1b[" in run("log", "novel", color=True).stdout
    assert "\x1b[" not in run("log", "novel").stdout  # piped: plain
    assert "\x1b[" not in run("--color", "never", "log", "novel", color=True).stdout
    assert "\x1b[" in run("--color", "always", "log", "novel").stdout
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in run("log", "novel", color=True).stdout
    assert "\x1b[" in run("--color", "always", "log", "novel").stdout


_REPORT_MODULES = """
import atexit, json, sys
report = sys.argv[1]
atexit.register(lambda: open(report, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["ckpt", *sys.argv[2:]]
from ckpt.cli.main import main
main()
"""


def _imported_modules(*args: str, cwd: Path) -> set[str]:
    """Every module loaded by the time ``ckpt ARGS`` exits, run in a fresh interpreter."""
    report = cwd / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES, str(report), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(report.read_text()))


HEAVY = {
    "zstandard",
    "blake3",
    "cattrs",
    "attrs",
    "ckpt.repository",
    "ckpt.history.job",
    "ckpt.objects",
}


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    loaded = _imported_modules("--help", cwd=tmp_path)
    assert "click" in loaded
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


def test_import_and_help_leave_the_dashboard_alone(tmp_path: Path) -> None:
    dashboard = {"ckpt.ui", "ckpt.ui.server", "ckpt.cli.ui", "http.server", "socketserver"}
    assert not _imported_modules("--help", cwd=tmp_path) & dashboard
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys, ckpt; print(json.dumps(sorted(sys.modules)))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert not set(json.loads(done.stdout)) & dashboard
    # `ckpt ui --help` needs its command module only.
    assert "ckpt.ui.server" not in _imported_modules("ui", "--help", cwd=tmp_path)


def test_help_imports_no_command_module(tmp_path: Path) -> None:
    loaded = _imported_modules("--help", cwd=tmp_path)
    assert "ckpt.cli.summaries" in loaded  # where the short help of each command comes from
    cli_modules = {name for name in loaded if name.startswith("ckpt.cli.")}
    command_modules = {module for module, _, _ in COMMAND_MODULES}
    assert not cli_modules & (command_modules | {"ckpt.cli.docgen"}), sorted(cli_modules)


def test_a_command_help_imports_only_that_command_module(tmp_path: Path) -> None:
    loaded = _imported_modules("log", "--help", cwd=tmp_path)
    command_modules = {module for module, _, _ in COMMAND_MODULES}
    assert loaded & command_modules == {"ckpt.cli.history"}


def test_log_imports_only_its_command_module(tmp_path: Path, store: Path, novel: Job) -> None:
    loaded = _imported_modules("--store", str(store), "log", "novel", cwd=tmp_path)
    cli_modules = {name for name in loaded if name.startswith("ckpt.cli.")}
    assert "ckpt.cli.history" in cli_modules
    assert not cli_modules & {
        "ckpt.cli.maintenance",
        "ckpt.cli.refs",
        "ckpt.cli.jobs",
        "ckpt.cli.transfer",
        "ckpt.cli.setup",
        "ckpt.cli.docgen",
    }
    assert not loaded & {
        "ckpt.maintenance.gc",
        "ckpt.maintenance.verify",
        "ckpt.maintenance.stats",
        "ckpt.transfer.exchange",
        "ckpt.pipeline.runner",
    }
    # Reading history needs no value encoding: no cattrs, no orjson, no writer-side helpers.
    assert not loaded & {
        "cattrs",
        "ckpt.values.serialize",
        "orjson",
        "decimal",
        "random",
        "concurrent.futures",
    }, sorted(loaded & {"cattrs", "ckpt.values.serialize", "orjson", "decimal", "random"})


#: What `ckpt log` (reading a few commits, their refs and tags) never needs: the writing side
#: of the object store, diffs, the graph, tag annotations, ref checks, shell completion.
NOT_FOR_LOG = {
    "ckpt.objects.writer",
    "ckpt.objects.chunking",
    "ckpt.objects.reliance",
    "ckpt.objects.stream",
    "ckpt.history.diff",
    "ckpt.history.tags",
    "ckpt.history.refcheck",
    "ckpt.cli.graph",
    "click.shell_completion",
    "shutil",
}


def test_log_reads_commits_without_the_writing_side(
    tmp_path: Path, store: Path, novel: Job
) -> None:
    novel.tag("v1", message="first cut")  # a decoration to show: read from the refs alone
    loaded = _imported_modules("--store", str(store), "log", "novel", "-n", "10", cwd=tmp_path)
    assert {"ckpt.objects.store", "ckpt.objects.model", "ckpt.history.refs"} <= loaded
    assert not loaded & NOT_FOR_LOG, sorted(loaded & NOT_FOR_LOG)
    # What log leaves out is still imported where it is needed.
    graph = _imported_modules("--store", str(store), "log", "novel", "--graph", cwd=tmp_path)
    assert "ckpt.cli.graph" in graph
    shown = _imported_modules("--store", str(store), "show", "novel", "v1", cwd=tmp_path)
    assert {"ckpt.history.diff", "ckpt.history.tags"} <= shown


def test_python_dash_m_ckpt(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ckpt", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout == f"ckpt {ckpt.__version__}\n"
