"""The text graph of ``log --graph``."""

from __future__ import annotations

import datetime as dt

from ckpt.cli.graph import layout
from ckpt.history.documents import topological
from ckpt.objects.ids import CommitId, ObjectId
from ckpt.objects.model import Commit

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _commit(name: str, minute: int, *parents: str) -> Commit:
    return Commit(
        id=CommitId(ObjectId(name)),
        tree=ObjectId("t" * 64),
        parents=tuple(CommitId(ObjectId(p)) for p in parents),
        job="j",
        branch="main",
        stage=name,
        time=T0 + dt.timedelta(minutes=minute),
        seq=minute,
    )


def _draw(commits: list[Commit]) -> list[str]:
    ordered = topological(commits)
    lines = []
    for row in layout(ordered, lambda c: list(c.parents)):
        lines.append(f"{row.node} {row.commit.id}")
        lines.extend(row.after)
    return lines


def test_a_straight_history() -> None:
    commits = [_commit("a", 1), _commit("b", 2, "a"), _commit("c", 3, "b")]
    assert _draw(commits) == ["* c", "* b", "* a"]


def test_two_branches_joining_at_the_fork_point() -> None:
    commits = [
        _commit("a", 1),
        _commit("b", 2, "a"),
        _commit("m1", 3, "b"),
        _commit("x1", 4, "b"),
        _commit("m2", 5, "m1"),
    ]
    assert _draw(commits) == ["* m2", "| * x1", "* | m1", "|/", "* b", "* a"]


def test_three_branches_cross_to_join() -> None:
    commits = [
        _commit("a", 1),
        _commit("b", 2, "a"),
        _commit("x", 3, "a"),  # forks at a
        _commit("y", 4, "b"),  # forks at b
        _commit("c", 5, "b"),
    ]
    assert _draw(commits) == [
        "* c",
        "| * y",
        "|/",
        "| * x",
        "* | b",
        "|/",
        "* a",
    ]


def test_join_across_a_line_in_between() -> None:
    commits = [
        _commit("a", 1),
        _commit("z", 2),  # an unrelated root
        _commit("p", 3, "a"),
        _commit("q", 4, "z"),
        _commit("r", 5, "a"),
    ]
    assert _draw(commits) == ["* r", "| * q", "| | * p", "|_|/", "| * z", "* a"]


def test_children_come_before_parents_even_with_skewed_clocks() -> None:
    parent = _commit("p", 10)
    child = _commit("c", 5, "p")  # clock went backwards
    assert [c.id for c in topological([parent, child])] == ["c", "p"]
