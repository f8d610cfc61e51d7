"""`ckpt --help` lists commands from a generated table, which must match the commands."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from ckpt.cli.docgen import SUMMARIES_PATH, render_summaries, summary
from ckpt.cli.main import COMMAND_MODULES, cli, find_command
from ckpt.cli.summaries import SUMMARIES

REGENERATE = "regenerate it with: python -m ckpt.cli.docgen --summaries"
COMMANDS = [(module, name) for module, _, names in COMMAND_MODULES for name in names]


def test_the_table_is_up_to_date() -> None:
    text = SUMMARIES_PATH.read_text(encoding="utf-8")
    assert render_summaries() == text, f"ckpt/cli/summaries.py is stale; {REGENERATE}"


@pytest.mark.parametrize(("module", "name"), COMMANDS)
def test_the_table_gives_each_command_its_own_short_help(module: str, name: str) -> None:
    command = find_command(module, name)
    assert name in SUMMARIES, f"`ckpt {name}` is missing from ckpt/cli/summaries.py; {REGENERATE}"
    stand_in = click.Command(name, **SUMMARIES[name])
    assert stand_in.hidden == command.hidden
    for limit in range(160):
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), (
            f"the short help of `ckpt {name}` at width {limit} differs; {REGENERATE}"
        )


_WORDS = st.sampled_from(
    ["Show", "the", "log", "vs.", "e.g.", "HEAD.", "end.", "x", "(default", "HEAD).", "\b", "--"]
)
_HELP = st.lists(
    st.tuples(_WORDS, st.sampled_from([" ", " ", "  ", "\n", "\n\n", "\t"])), max_size=40
).map(lambda pairs: "".join(word + gap for word, gap in pairs))


@given(
    help_text=_HELP,
    short_help=st.none() | _HELP,
    hidden=st.booleans(),
    deprecated=st.sampled_from([False, True, "use ckpt log"]),
)
def test_a_summary_reproduces_any_command_s_short_help(
    help_text: str, short_help: str | None, hidden: bool, deprecated: bool | str
) -> None:
    command = click.Command(
        "cmd", help=help_text, short_help=short_help, hidden=hidden, deprecated=deprecated
    )
    stand_in = click.Command("cmd", **summary(command))
    assert stand_in.hidden == command.hidden
    for limit in (0, 2, 3, 4, 10, 30, 45, 60, 200):
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)


def test_a_command_missing_from_the_table_is_listed_from_the_command_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for width in (50, 80, 120):
        expected = CliRunner().invoke(cli, ["--help"], terminal_width=width)
        monkeypatch.delitem(SUMMARIES, "log")
        monkeypatch.delitem(SUMMARIES, "clone")
        result = CliRunner().invoke(cli, ["--help"], terminal_width=width)
        monkeypatch.undo()
        assert result.exit_code == expected.exit_code == 0
        assert result.output == expected.output
        assert "\n  log     Show the checkpoints" in result.output
