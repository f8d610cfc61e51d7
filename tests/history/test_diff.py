"""Stage differences between checkpoints."""

from __future__ import annotations

from pathlib import Path

import ckpt
from ckpt.history.diff import ADDED, CHANGED, REMOVED, diff_commits, value_diff, value_text


def test_changes_between_two_checkpoints(tmp_path: Path) -> None:
    with ckpt.init(tmp_path / "s", durable=False) as repo:
        job = repo.job("j")
        job.save("a", {"x": 1, "y": [1, 2]})
        job.save("b", "text")
        job.save("a", {"x": 2, "y": [1, 2]})
        job.save("c", b"\x00\x01")
        forward = diff_commits(job, "HEAD~3")
        assert [(c.stage, c.change) for c in forward.changes] == [
            ("a", CHANGED),
            ("b", ADDED),
            ("c", ADDED),
        ]
        backward = diff_commits(job, "HEAD", "HEAD~3")
        assert [(c.stage, c.change) for c in backward.changes] == [
            ("a", CHANGED),
            ("b", REMOVED),
            ("c", REMOVED),
        ]
        assert value_diff(job, forward.changes[0]) == [
            "--- a/a",
            "+++ b/a",
            "@@ -1,5 +1,5 @@",
            " {",
            '-  "x": 1,',
            '+  "x": 2,',
            '   "y": [',
            "     1,",
            "     2",
        ]
        binary = forward.changes[2]
        assert binary.new is not None
        assert (
            value_text(job, binary.new)
            == f"<2 bytes of binary data, object {binary.new.id[:12]}>\n"
        )
        assert diff_commits(job, "HEAD", "HEAD").changes == ()
        assert forward.to_json()["changes"][1]["old"] is None
