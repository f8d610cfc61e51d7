"""Checkpoint flags for a user's own click command: ``@ckpt.click_options(pipeline)``.

::

    @click.command()
    @click.option("--input", "story", type=click.Path(exists=True))
    @ckpt.click_options(pipeline)
    def main(story: str | None, runner: ckpt.Runner) -> None:
        result = runner.run(load_story(story) if story else None)

adds ``--job-id``, ``--resume``, ``--resume-from STAGE``, ``--at REV``,
``--branch NAME``, ``--restart``, ``--list-checkpoints``, ``--no-checkpoint``
and ``--store PATH`` (default ``$CKPT_DIR``, else the ``default_store`` given
here, else ``.ckpt``), and hands the command a :class:`Runner` configured
from them.  ``--list-checkpoints`` prints the job's checkpoints and exits
without calling the command.  A run of a job that already has checkpoints
must say ``--resume`` or ``--restart``: ckpt never silently pays for work
twice.  Errors from ckpt become one-line click errors (exit code 1).

This is the one library module that imports click and prints.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import click

from ckpt.errors import CkptError
from ckpt.pipeline.runner import Pipeline, RunResult, open_store
from ckpt.repository import Repository

F = TypeVar("F", bound=Callable[..., Any])

_KEYS = (
    "ckpt_job_id",
    "ckpt_resume",
    "ckpt_resume_from",
    "ckpt_at",
    "ckpt_branch",
    "ckpt_restart",
    "ckpt_list",
    "ckpt_no_checkpoint",
    "ckpt_store",
)


@attrs.frozen
class Runner:
    """A pipeline bound to a job, a store and the resume mode the flags chose."""

    pipeline: Pipeline
    job_id: str
    store: str
    resume: bool = False
    resume_from: str | None = None
    at: str | None = None
    branch: str | None = None
    restart: bool = False
    no_checkpoint: bool = False

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
        }
        return args, options

    def run(self, input: Any = None, **overrides: Any) -> RunResult:
        """Run the pipeline as the flags say.  When resuming or restarting, ``input=None``
        means "use the input the job was started with"."""
        args, options = self._options(input)
        return self.pipeline.run(self.job_id, *args, **{**options, **overrides})

    async def run_async(self, input: Any = None, **overrides: Any) -> RunResult:
        args, options = self._options(input)
        return await self.pipeline.run_async(self.job_id, *args, **{**options, **overrides})


def click_options(
    pipeline: Pipeline, *, default_store: str | None = None, param: str = "runner"
) -> Callable[[F], F]:
    """Decorator adding ckpt's checkpoint flags to a click command; the command receives a
    :class:`Runner` as keyword argument ``param``."""
    stages = click.Choice(pipeline.stage_names)
    options = [
        click.option("--job-id", "ckpt_job_id", metavar="ID", help="Job to run or resume."),
        click.option(
            "--resume", "ckpt_resume", is_flag=True, help="Continue the job from its checkpoints."
        ),
        click.option(
            "--resume-from",
            "ckpt_resume_from",
            type=stages,
            metavar="STAGE",
            help="Roll the job back to just before STAGE and re-run from there.",
        ),
        click.option(
            "--at",
            "ckpt_at",
            metavar="REV",
            help="Resume from checkpoint REV (commit id, tag, HEAD~N).",
        ),
        click.option(
            "--branch",
            "ckpt_branch",
            metavar="NAME",
            help="Resume on branch NAME (created at the resume point), keeping the current one.",
        ),
        click.option(
            "--restart", "ckpt_restart", is_flag=True, help="Start the job over (history kept)."
        ),
        click.option(
            "--list-checkpoints",
            "ckpt_list",
            is_flag=True,
            help="List the job's checkpoints and exit.",
        ),
        click.option(
            "--no-checkpoint", "ckpt_no_checkpoint", is_flag=True, help="Run without saving."
        ),
        click.option(
            "--store",
            "ckpt_store",
            metavar="PATH",
            envvar="CKPT_DIR",
            default=default_store or ".ckpt",
            show_default=True,
            help="Checkpoint store (created if absent; env CKPT_DIR).",
        ),
    ]

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flags = {key: kwargs.pop(key) for key in _KEYS}
            try:
                runner = _runner(pipeline, flags)
                if flags["ckpt_list"]:
                    _list_checkpoints(runner)
                    click.get_current_context().exit(0)
                kwargs[param] = runner
                return fn(*args, **kwargs)
            except CkptError as exc:
                raise click.ClickException(str(exc)) from exc

        command: Any = wrapper
        for option in reversed(options):
            command = option(command)
        result: F = command
        return result

    return decorate


def _runner(pipeline: Pipeline, flags: dict[str, Any]) -> Runner:
    job_id = flags["ckpt_job_id"]
    wants_job = [
        name
        for name, key in (
            ("--resume", "ckpt_resume"),
            ("--resume-from", "ckpt_resume_from"),
            ("--at", "ckpt_at"),
            ("--branch", "ckpt_branch"),
            ("--list-checkpoints", "ckpt_list"),
        )
        if flags[key]
    ]
    if job_id is None and wants_job:
        raise click.UsageError(f"{wants_job[0]} needs --job-id")
    if flags["ckpt_no_checkpoint"] and (wants_job or flags["ckpt_restart"]):
        raise click.UsageError("--no-checkpoint cannot be combined with resuming or --restart")
    if flags["ckpt_restart"] and (flags["ckpt_resume"] or flags["ckpt_resume_from"]):
        raise click.UsageError("--restart and --resume/--resume-from contradict each other")
    if job_id is None:
        job_id = f"run-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        if not flags["ckpt_no_checkpoint"]:
            click.echo(f"ckpt: job id {job_id} (resume with --job-id {job_id} --resume)", err=True)
    runner = Runner(
        pipeline=pipeline,
        job_id=job_id,
        store=flags["ckpt_store"],
        resume=flags["ckpt_resume"],
        resume_from=flags["ckpt_resume_from"],
        at=flags["ckpt_at"],
        branch=flags["ckpt_branch"],
        restart=flags["ckpt_restart"],
        no_checkpoint=flags["ckpt_no_checkpoint"],
    )
    if not (runner.no_checkpoint or runner.resuming or runner.restart or flags["ckpt_list"]):
        job = open_store(runner.store).job(job_id)
        if job.exists:
            raise click.UsageError(
                f"job {job_id!r} already has checkpoints: pass --resume to continue it, "
                "or --restart to start it over"
            )
    return runner


def _list_checkpoints(runner: Runner) -> None:
    job = runner.repository().job(runner.job_id)
    if not job.exists:
        raise CkptError(f"no checkpoints found for job {runner.job_id!r} in {runner.store}")
    commits = list(reversed(job.log()))
    click.echo(f"Checkpoints of job {job.name!r} (branch {job.branch_name}):")
    for number, commit in enumerate(commits, 1):
        what = commit.stage if commit.stage is not None else f"[{commit.status}]"
        when = commit.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"{number:>3}. {what:<24} {when}  {commit.short_id}  "
            f"cost {commit.cost:.4f} (total {commit.total_cost:.4f})"
        )
    if commits and job.is_cut(commits[0]):
        click.echo("     (older checkpoints were pruned by retention)")
    progress = runner.pipeline.progress(runner.job_id, runner.store)
    if progress is not None and progress.next_stage is not None:
        click.echo(f"Next run resumes at stage {progress.next_stage}.")
