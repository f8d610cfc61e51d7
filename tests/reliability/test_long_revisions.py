"""Guarantee 19: revision parsing is linear and has a length limit.

``HEAD`` followed by 30,000 ``^`` is refused at once as too long (``ckpt
log`` in its own process); any revision up to the limit is parsed in one
pass, with the same result as git's grammar read suffix by suffix (checked
by hypothesis against that slower reading).

Before the fix each suffix was found by a regular expression search over
the whole rest of the string: 30,000 ``^`` took 7.7 s to refuse.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import ckpt
from ckpt.errors import InvalidRevisionError
from ckpt.history.revisions import Revision, parse_revision

from ._support import Figures, run_ckpt

_SUFFIX = re.compile(r"(~[0-9]*|\^)\Z")


def _suffix_by_suffix(text: str) -> Revision | None:
    """Git's grammar read the slow way: strip one suffix at a time from the end."""
    rest, back = text.strip(), 0
    while (match := _SUFFIX.search(rest)) is not None:
        token = match.group(1)
        if token in ("^", "~"):
            back += 1
        elif len(token) > 10:
            return None
        else:
            back += int(token[1:])
        rest = rest[: match.start()]
    return Revision(rest, back) if rest else None


def test_a_huge_revision_is_refused_at_once(tmp_path: Path, figures: Figures) -> None:
    store = tmp_path / "store"
    ckpt.init(store).job("novel").save("outline", {"chapters": 3})
    started = time.perf_counter()
    result = run_ckpt(store, "log", "novel", "HEAD" + "^" * 30_000)
    figures.set("seconds_to_refuse_30000_carets", round(time.perf_counter() - started, 2))
    assert result.returncode == 3, result.stderr
    assert "is too long" in result.stderr and len(result.stderr.splitlines()) == 1
    long_but_allowed = "HEAD" + "^" * 1000  # within the documented limit of 1024
    assert parse_revision(long_but_allowed) == Revision("HEAD", 1000)


@given(
    st.text(alphabet="ab2_", min_size=1, max_size=8),
    st.lists(st.sampled_from(["^", "~", "~1", "~07", "~12", "~1234567890"]), max_size=30),
)
def test_one_pass_parsing_agrees_with_suffix_by_suffix(base: str, suffixes: list[str]) -> None:
    text = base + "".join(suffixes)
    expected = _suffix_by_suffix(text)
    if expected is None:
        try:
            parse_revision(text)
        except InvalidRevisionError:
            return
        raise AssertionError(f"{text!r} should be refused")
    assert parse_revision(text) == expected
