"""Guarantee 18: an import takes a whole, valid job or writes nothing.

A real export is damaged one way at a time (wrong shapes, names the API
refuses, refs and parents naming commits that are not there) and given to
``ckpt import`` in its own process.  Each time: one line saying where the
document is wrong, never an internal error, and the store byte-for-byte as
it was (no partial job for ``ckpt jobs`` to list).

Before the fix, tags given as a list or a stage spec as a list ended in
"internal error: AttributeError" after writing a partial job, and stage
names like ``../../x`` or ``a\\x1b[2J\\nb`` and a branch named ``HEAD`` were
imported.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ckpt
from ckpt.transfer.exchange import export_job

from ._support import Figures, run_ckpt, snapshot

Doc = dict[str, Any]


def _rename_stage(doc: Doc, new: str) -> None:
    commit = doc["commits"][0]
    old = commit["stage_order"][0]
    commit["stage_order"][0] = new
    commit["stages"][new] = commit["stages"].pop(old)


def _set(path: str, value: object) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        target: Any = doc
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return change


def _first_spec_as_list(doc: Doc) -> None:
    commit = doc["commits"][0]
    commit["stages"][commit["stage_order"][0]] = ["not", "a", "spec"]


MALFORMED: dict[str, Callable[[Doc], None]] = {
    "tags as a list": _set("tags", ["v1"]),
    "stage spec as a list": _first_spec_as_list,
    "stage name with ..": lambda doc: _rename_stage(doc, "../../x"),
    "stage name with escapes": lambda doc: _rename_stage(doc, "a\x1b[2J\nb"),
    "branch named HEAD": lambda doc: doc["branches"].update({"HEAD": doc["commits"][0]["id"]}),
    "head named HEAD": _set("head", "HEAD"),
    "job name with a slash": _set("job", "a/b"),
    "branch naming no exported commit": _set("branches.main", "f" * 64),
    "parent not exported": _set("commits.1.parents", ["e" * 64]),
    "commits not a list": _set("commits", {"a": 1}),
    "unknown status": _set("commits.0.status", "exploded"),
    "seq not a number": _set("commits.0.seq", "one"),
    "time not a time": _set("commits.0.time", "yesterday"),
    "stage order missing a stage": _set("commits.0.stage_order", []),
    "bad base64": lambda doc: doc["commits"][0]["stages"]["raw"].update(base64="!!"),
    "record garbled": _set("record", {"expires_at": 5}),
    "unknown field": _set("commits.0.surprise", 1),
}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Doc:
    repo = ckpt.init(tmp_path_factory.mktemp("source") / "store")
    job = repo.job("novel")
    job.save_many({"outline": {"chapters": 3}, "raw": b"\x00\x01bytes"})
    job.save("draft", "It was a dark and stormy night.")
    job.tag("v1")
    return export_job(job)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_export_writes_nothing(
    case: str, export: Doc, tmp_path: Path, figures: Figures
) -> None:
    store = tmp_path / "store"
    ckpt.init(store).job("existing").save("a", {"kept": True})
    before = snapshot(store)
    doc = copy.deepcopy(export)
    MALFORMED[case](doc)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))

    result = run_ckpt(store, "import", str(path))
    assert result.returncode != 0, case
    assert "internal error" not in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert snapshot(store) == before, case
    figures.add("malformed_exports_refused", 1)


def test_the_export_itself_imports_whole(export: Doc, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ckpt.init(store)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    assert run_ckpt(store, "import", str(path)).returncode == 0
    assert ckpt.open(store).job("novel").load("draft") == "It was a dark and stormy night."
