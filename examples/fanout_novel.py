"""A fan-out LLM pipeline: 40 chapters written in parallel, killed, resumed, then edited.

Run it::

    python examples/fanout_novel.py [--store DIR]

The "model" is a fake one (a short sleep, deterministic text, a price per
token), so the example runs offline in a few seconds.  What happens:

1. A child process runs the pipeline: an outline, then 40 chapters through
   ``ctx.map(write_chapter, beats, max_concurrency=8)`` while the cover is
   drawn beside them (``max_concurrency=2``: the two stages do not depend
   on each other).  Every chapter is checkpointed as soon as it is written.
   Once 15 chapters are saved, the child is killed with SIGKILL.
2. Another process resumes the job.  While it runs, a second runner is
   refused at once: the job's lease names the process that holds it.
   The resumed run writes only the chapters that were not saved and pays
   for each chapter once.
3. The outline of one chapter is edited (the outline stage's version goes
   from 1 to 2).  The outline is stale, and so are the stages that take
   its output; re-running them rewrites only the chapter whose beat
   changed: the other 39 are known by their content and loaded.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import attrs

import ckpt
from ckpt.pipeline.lease import read_lease

JOB = "saga-001"
PRICE_PER_TOKEN = 0.00002  # dollars


@attrs.frozen
class Brief:
    title: str
    chapters: int


@attrs.frozen
class Beat:
    number: int
    summary: str


@attrs.frozen
class Chapter:
    number: int
    text: str
    words: int


@attrs.frozen
class Book:
    title: str
    cover: str
    chapters: int
    words: int


def fake_model(prompt: str, tokens: int) -> ckpt.StageResult[str]:
    """An LLM call: some latency, a deterministic answer, a cost."""
    time.sleep(0.02 + int(hashlib.sha256(prompt.encode()).hexdigest()[:2], 16) / 255 * 0.05)
    answer = f"[{hashlib.sha256(prompt.encode()).hexdigest()[:8]}] {prompt}"
    return ckpt.StageResult(answer, cost=tokens * PRICE_PER_TOKEN, tokens=tokens)


def outline_beats(brief: Brief, edited: bool) -> list[Beat]:
    beats = [Beat(n, f"{brief.title}, part {n + 1}") for n in range(brief.chapters)]
    if edited:  # the editor rewrote the beat of chapter 7
        beats[6] = Beat(6, f"{brief.title}, part 7: the storm comes early")
    return beats


def write_chapter(beat: Beat) -> ckpt.StageResult[Chapter]:
    """One chapter from its beat: one model call, checkpointed on its own."""
    reply = fake_model(f"Write chapter {beat.number + 1}: {beat.summary}", tokens=1500)
    text = reply.value * 3
    return ckpt.StageResult(Chapter(beat.number, text, len(text.split())), reply.cost, reply.tokens)


def make_pipeline(store: str, *, edited: bool = False) -> ckpt.Pipeline:
    pipeline = ckpt.Pipeline(store=store, max_concurrency=2)

    @pipeline.stage(version="2" if edited else "1")
    def outline(input: Brief) -> ckpt.StageResult[list[Beat]]:
        return ckpt.StageResult(outline_beats(input, edited), cost=0.05, tokens=2500)

    @pipeline.stage
    def chapters(outline: list[Beat], ctx: ckpt.StageContext) -> list[Chapter]:
        written: list[Chapter] = ctx.map(write_chapter, outline, max_concurrency=8)
        return written

    @pipeline.stage
    def cover(input: Brief) -> ckpt.StageResult[str]:
        time.sleep(0.5)  # drawn while the chapters are written
        return ckpt.StageResult(f"cover art for {input.title}", cost=0.04, tokens=0)

    @pipeline.stage
    def assemble(chapters: list[Chapter], cover: str) -> Book:
        return Book(BRIEF.title, cover, len(chapters), sum(c.words for c in chapters))

    return pipeline


BRIEF = Brief("The Tide Atlas", 40)


def chapters_saved(job: ckpt.Job) -> int:
    return sum(1 for name in job.stages() if name.startswith("chapters.item.")) if job.exists else 0


def run_child(store: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--store", store, "--child"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store directory (default: a new temporary one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = make_pipeline(args.store).run(JOB, BRIEF, wait=True)
        print(f"  [child {os.getpid()}] ran {', '.join(result.ran) or 'nothing'}", flush=True)
        return
    store = args.store or tempfile.mkdtemp(prefix="fanout-")
    if args.store is None:  # a temporary store goes when the example ends
        atexit.register(shutil.rmtree, store, ignore_errors=True)
    pipeline = make_pipeline(store)
    repo = pipeline.repository()  # created if absent
    job = repo.job(JOB)
    print(f"store: {store}")

    print("1. write 40 chapters, 8 at a time, beside the cover; kill the writer midway")
    child = run_child(store)
    while chapters_saved(job) < 15 and child.poll() is None:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    progress = pipeline.progress(JOB)
    assert progress is not None
    print(
        f"  killed with {progress.items_done}/{progress.items_total} chapters saved "
        f"(stages done: {', '.join(progress.completed)}); ${progress.cost:.2f} spent"
    )
    paid_before = progress.cost

    print("2. resume in another process; a second runner is refused meanwhile")
    child = run_child(store)
    while (lease := read_lease(repo.storage, JOB)) is None or lease.pid != child.pid:
        time.sleep(0.01)
    try:
        pipeline.run(JOB)
    except ckpt.LeaseHeldError as exc:
        print(f"  refused: {exc}".split("; ")[0])
    child.wait()
    state = pipeline.state(JOB)
    written = (state.total_tokens - progress.tokens) // 1500  # chapters paid for by the resumed run
    print(f"  resumed: {written} chapters written now, {progress.items_done} loaded")
    print(f"  {state['assemble']}")
    assert written + (progress.items_done or 0) == 40
    one_pass = 0.05 + 0.04 + 40 * 1500 * PRICE_PER_TOKEN
    total = state.total_cost
    print(f"  total cost ${total:.2f} = one pass (${one_pass:.2f}): no chapter paid twice")
    assert abs(state.total_cost - one_pass) < 1e-6 and state.total_cost > paid_before

    print("3. the editor changes the beat of chapter 7 (outline version 1 -> 2)")
    edited = make_pipeline(store, edited=True)
    for stage, why in edited.stale(JOB).items():
        print(f"  stale: {stage} ({why})")
    calls_before = state.stage_costs["chapters"][1] // 1500
    result = edited.run(JOB)
    rewritten = result.stage_costs["chapters"][1] // 1500 - calls_before
    print(f"  re-ran {', '.join(result.ran)}; chapters rewritten: {rewritten}, loaded: 39")
    assert rewritten == 1
    print(f"  chapter 7 now starts: {result['chapters'][6].text.split('] ')[1][:48]}...")
    print("done")


if __name__ == "__main__":
    main()
