"""The checkpoint flags of a user's own program, whatever parses them.

``@ckpt.click_options`` (:mod:`ckpt.pipeline.clickopts`) and the argparse
helper (:mod:`ckpt.pipeline.argparseopts`) give a program the same flags,
under the same names and under the names seed 001's users type:

=====================  ==========================  =================================
flag                   also accepted               meaning
=====================  ==========================  =================================
``--job-id ID``        ``--workflow-id ID``        the job to run or resume
``--resume``                                       continue the job
``--resume-from S``    ``--resume-from-step S``    roll back to just before stage S
``--at REV``           ``--checkpoint-path REV``   resume from checkpoint REV
``--branch NAME``                                  resume on a new branch
``--restart``                                      start the job over
``--list-checkpoints``                             list the job's checkpoints, exit
``--no-checkpoint``                                run without saving
``--store PATH``                                   the store (env ``CKPT_DIR``)
``--wait``                                         wait for another runner of the job
=====================  ==========================  =================================

Both parse into :class:`Flags`; :func:`make_runner` checks them (a
:class:`FlagError` for a contradiction, which each parser reports as a
usage error) and gives the :class:`Runner` the program runs its pipeline
with.  A run of a job that already has checkpoints must say ``--resume``
or ``--restart``: ckpt never silently pays for work twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from ckpt.errors import CkptError
from ckpt.pipeline.runner import Pipeline, RunResult, open_store
from ckpt.repository import Repository

#: (flag, aliases, metavar or None for a switch, help): the table of the module docstring.
FLAGS: tuple[tuple[str, tuple[str, ...], str | None, str], ...] = (
    ("--job-id", ("--workflow-id",), "ID", "Job to run or resume."),
    ("--resume", (), None, "Continue the job from its checkpoints."),
    (
        "--resume-from",
        ("--resume-from-step",),
        "STAGE",
        "Roll the job back to just before STAGE and re-run from there.",
    ),
    ("--at", ("--checkpoint-path",), "REV", "Resume from checkpoint REV (commit id, tag, HEAD~N)."),
    (
        "--branch",
        (),
        "NAME",
        "Resume on branch NAME (created at the resume point), keeping the current one.",
    ),
    ("--restart", (), None, "Start the job over (history kept)."),
    ("--list-checkpoints", (), None, "List the job's checkpoints and exit."),
    ("--no-checkpoint", (), None, "Run without saving."),
    ("--store", (), "PATH", "Checkpoint store (created if absent; env CKPT_DIR)."),
    ("--wait", (), None, "If another process is running the job, wait for it to finish."),
)


class FlagError(CkptError):
    """The checkpoint flags contradict each other or lack something (a usage error)."""


@attrs.frozen
class Flags:
    """The checkpoint flags as parsed."""

    job_id: str | None = None
    resume: bool = False
    resume_from: str | None = None
    at: str | None = None
    branch: str | None = None
    restart: bool = False
    list_checkpoints: bool = False
    no_checkpoint: bool = False
    store: str = ".ckpt"
    wait: bool = False


@attrs.frozen
class Runner:
    """A pipeline bound to a job, a store and the resume mode the flags chose.

    ``report`` is how the program tells its user things (the stale stages a
    resumed run will re-run); the flag helpers print them on stderr.
    """

    pipeline: Pipeline
    job_id: str
    store: str
    resume: bool = False
    resume_from: str | None = None
    at: str | None = None
    branch: str | None = None
    restart: bool = False
    no_checkpoint: bool = False
    wait: bool = False
    report: Callable[[str], object] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def resuming(self) -> bool:
        return bool(self.resume or self.resume_from or self.at or self.branch)

    def repository(self) -> Repository:
        return self.pipeline.repository(self.store)

    def _options(self, input: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        reuse = self.resuming or self.restart
        args: tuple[Any, ...] = () if input is None and reuse else (input,)
        if self.no_checkpoint:
            return args, {"no_checkpoint": True}
        options = {
            "store": self.store,
            "restart": self.restart,
            "resume_from": self.resume_from,
            "at": self.at,
            "branch": self.branch,
            "wait": self.wait,
        }
        return args, options

    def _announce_stale(self) -> None:
        if self.report is None or self.no_checkpoint or self.restart or not self.resuming:
            return
        if self.at is not None or self.resume_from is not None or self.branch is not None:
            return  # the run starts elsewhere than HEAD: what is stale there is judged then
        stale = self.pipeline.stale(self.job_id, self.store)
        for stage, why in stale.items():
            self.report(f"ckpt: stage {stage} is stale ({why}): it runs again")

    def run(self, input: Any = None, **overrides: Any) -> RunResult:
        """Run the pipeline as the flags say.  When resuming or restarting, ``input=None``
        means "use the input the job was started with"."""
        args, options = self._options(input)
        self._announce_stale()
        return self.pipeline.run(self.job_id, *args, **{**options, **overrides})

    async def run_async(self, input: Any = None, **overrides: Any) -> RunResult:
        args, options = self._options(input)
        self._announce_stale()
        return await self.pipeline.run_async(self.job_id, *args, **{**options, **overrides})


def make_runner(
    pipeline: Pipeline, flags: Flags, report: Callable[[str], object] | None = None
) -> Runner:
    """The Runner the flags ask for; FlagError if they contradict each other, or if a new run
    would start on a job that already has checkpoints."""
    job_id = flags.job_id
    wants_job = [
        name
        for name, given in (
            ("--resume", flags.resume),
            ("--resume-from", flags.resume_from),
            ("--at", flags.at),
            ("--branch", flags.branch),
            ("--list-checkpoints", flags.list_checkpoints),
        )
        if given
    ]
    if flags.resume_from is not None and flags.resume_from not in pipeline.stage_names:
        raise FlagError(
            f"--resume-from: no stage {flags.resume_from!r} "
            f"(stages: {', '.join(pipeline.stage_names)})"
        )
    if job_id is None and wants_job:
        raise FlagError(f"{wants_job[0]} needs --job-id")
    if flags.no_checkpoint and (wants_job or flags.restart):
        raise FlagError("--no-checkpoint cannot be combined with resuming or --restart")
    if flags.restart and (flags.resume or flags.resume_from):
        raise FlagError("--restart and --resume/--resume-from contradict each other")
    if job_id is None:
        job_id = f"run-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        if not flags.no_checkpoint and report is not None:
            report(f"ckpt: job id {job_id} (resume with --job-id {job_id} --resume)")
    runner = Runner(
        pipeline=pipeline,
        job_id=job_id,
        store=flags.store,
        resume=flags.resume,
        resume_from=flags.resume_from,
        at=flags.at,
        branch=flags.branch,
        restart=flags.restart,
        no_checkpoint=flags.no_checkpoint,
        wait=flags.wait,
        report=report,
    )
    if not (runner.no_checkpoint or runner.resuming or runner.restart or flags.list_checkpoints):
        job = open_store(runner.store).job(job_id)
        if job.exists:
            raise FlagError(
                f"job {job_id!r} already has checkpoints: pass --resume to continue it, "
                "or --restart to start it over"
            )
    return runner


def checkpoint_lines(runner: Runner) -> list[str]:
    """What ``--list-checkpoints`` prints (CkptError if the job has no checkpoints)."""
    job = runner.repository().job(runner.job_id)
    if not job.exists:
        raise CkptError(f"no checkpoints found for job {runner.job_id!r} in {runner.store}")
    commits = list(reversed(job.log()))
    lines = [f"Checkpoints of job {job.name!r} (branch {job.branch_name}):"]
    for number, commit in enumerate(commits, 1):
        what = commit.stage if commit.stage is not None else f"[{commit.status}]"
        when = commit.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{number:>3}. {what:<24} {when}  {commit.short_id}  "
            f"cost {commit.cost:.4f} (total {commit.total_cost:.4f})"
        )
    if commits and job.is_cut(commits[0]):
        lines.append("     (older checkpoints were pruned by retention)")
    progress = runner.pipeline.progress(runner.job_id, runner.store)
    if progress is not None and progress.next_stage is not None:
        lines.append(f"Next run resumes at stage {progress.next_stage}.")
    return lines
