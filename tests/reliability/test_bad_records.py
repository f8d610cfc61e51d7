"""Guarantee 17: a damaged job record breaks neither the store nor the job's history.

* A record whose ``expires_at`` and ``pruned_at`` lack a UTC offset (written
  by hand or by another tool) is read as UTC: ``jobs``, ``status``,
  ``verify`` and ``gc`` work, and the expiry still counts.
* A garbled record is reported by ``verify`` as ``bad-record`` while every
  other job is still checked; ``log`` and ``status`` of the job work from its
  intact history; ``ckpt repair`` rewrites the record with what can be read.

Every ``ckpt`` command runs in its own process.  Before the fix the first
broke ``jobs``, ``status``, ``verify`` and ``gc`` for the whole store ("can't
compare offset-naive and offset-aware datetimes"), and the second made
``repo.verify()`` raise and ``ckpt log`` of the job fail.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import ckpt

from ._support import Figures, run_ckpt


def _store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    repo = ckpt.init(store)
    job = repo.job("novel")
    for stage in ("outline", "draft", "edit"):
        job.save(stage, {"text": stage})
    job.set_ttl(3600)
    repo.job("other").save("a", {"ok": True})
    return store


def test_naive_times_in_a_record_are_read_as_utc(tmp_path: Path, figures: Figures) -> None:
    store = _store(tmp_path)
    meta = store / "jobs" / "novel" / "meta"
    doc = json.loads(meta.read_text())
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    doc["expires_at"] = past.replace(tzinfo=None).isoformat()
    doc["pruned_at"] = past.replace(tzinfo=None).isoformat()
    meta.write_text(json.dumps(doc))
    for args in (("jobs",), ("status", "novel"), ("verify", "--full"), ("gc", "--grace", "0s")):
        result = run_ckpt(store, *args)
        assert result.returncode == 0, (args, result.stderr)
        figures.add("commands_that_work", 1)
    jobs = json.loads(run_ckpt(store, "jobs", "--json").stdout)
    assert {j["name"]: j["status"] for j in jobs["jobs"]}["novel"] == "expired"


def test_a_garbled_record_is_reported_and_the_job_stays_readable(
    tmp_path: Path, figures: Figures
) -> None:
    store = _store(tmp_path)
    (store / "jobs" / "novel" / "meta").write_bytes(b"{garbage\n")

    report = ckpt.open(store).verify(full=True)
    assert [(p.kind, p.subject) for p in report.problems] == [("bad-record", "novel:meta")]
    assert set(report.jobs) == {"novel", "other"} and report.jobs["other"].ok
    log = run_ckpt(store, "log", "novel", "--json")
    assert log.returncode == 0, log.stderr
    assert [c["stage"] for c in json.loads(log.stdout)["commits"]] == ["edit", "draft", "outline"]
    assert run_ckpt(store, "status", "novel").returncode == 0
    assert run_ckpt(store, "jobs").returncode == 0
    assert run_ckpt(store, "gc", "--grace", "0s").returncode == 0

    repair = run_ckpt(store, "repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert "Rewrote the garbled record of job novel" in repair.stdout
    assert (store / "quarantine" / "meta-novel").read_bytes() == b"{garbage\n"
    assert run_ckpt(store, "verify", "--full").returncode == 0
    figures.set("jobs_checked_despite_a_garbled_record", len(report.jobs))
