"""One rule for a word that names both a ref and a stage: the ref wins, with a warning;
``stage:``, ``branch:`` and ``tag:`` name one kind only."""

from __future__ import annotations

import warnings

import pytest

import ckpt
from ckpt.errors import AmbiguousRevisionWarning, InvalidRevisionError


@pytest.fixture
def shadowed(history: tuple[ckpt.Job, list[ckpt.Commit]]) -> tuple[ckpt.Job, list[ckpt.Commit]]:
    """The history fixture (outline, draft, outline, review) with a branch named ``draft``
    at the first commit and a tag named ``review`` there too."""
    job, commits = history
    job.branch("draft", at=commits[0].id)
    job.tag("review", commits[0].id)
    return job, commits


def test_a_branch_wins_over_a_stage_and_warns(shadowed: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = shadowed
    with pytest.warns(AmbiguousRevisionWarning) as caught:
        assert job.resolve("draft").id == commits[0].id
    assert [str(w.message) for w in caught] == [
        "'draft' names both a branch and a stage of job 'novel': using the branch; "
        "write stage:draft for the other"
    ]


def test_a_tag_wins_over_a_stage_and_warns(shadowed: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = shadowed
    with pytest.warns(AmbiguousRevisionWarning, match="using the tag; write stage:review"):
        assert job.resolve("review~0").id == commits[0].id


def test_a_branch_wins_over_a_tag_and_warns(shadowed: tuple[ckpt.Job, list[ckpt.Commit]]) -> None:
    job, commits = shadowed
    job.tag("draft", commits[1].id)
    with pytest.warns(AmbiguousRevisionWarning) as caught:
        assert job.resolve("draft").id == commits[0].id
    assert str(caught[0].message) == (
        "'draft' names both a branch and a tag and a stage of job 'novel': using the branch; "
        "write tag:draft or stage:draft for the other"
    )


def test_kind_prefixes_name_one_kind_and_never_warn(
    shadowed: tuple[ckpt.Job, list[ckpt.Commit]],
) -> None:
    job, commits = shadowed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert job.resolve("stage:draft").id == commits[1].id
        assert job.resolve("stage:outline").id == commits[2].id
        assert job.resolve("stage:outline~1").id == commits[1].id
        assert job.resolve("branch:draft").id == commits[0].id
        assert job.resolve("tag:review").id == commits[0].id
        assert job.resolve("main").id == commits[3].id  # a branch alone: no warning


@pytest.mark.parametrize(
    ("rev", "message"),
    [
        (
            "stage:ending",
            "stage:ending: no checkpoint of job 'novel' saved stage 'ending' "
            "(stages: outline, draft, review)",
        ),
        ("branch:nope", "branch:nope: job 'novel' has no branch 'nope' (branches: draft, main)"),
        ("tag:nope", "tag:nope: job 'novel' has no tag 'nope' (tags: review)"),
    ],
)
def test_kind_prefixes_say_what_is_missing(
    shadowed: tuple[ckpt.Job, list[ckpt.Commit]], rev: str, message: str
) -> None:
    job, _ = shadowed
    with pytest.raises(InvalidRevisionError) as raised:
        job.resolve(rev)
    assert str(raised.value) == message
