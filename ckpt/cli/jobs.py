"""Jobs at a glance: ``jobs``, ``status``, ``watch``."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from ckpt.cli import output as out
from ckpt.cli.complete import complete_jobs
from ckpt.cli.context import command_line, get_job, open_repo
from ckpt.cli.currentjob import JobCommand
from ckpt.cli.durations import format_duration
from ckpt.cli.exits import DamageFoundError, JobFailedError, UserError
from ckpt.cli.history import json_option, what

if TYPE_CHECKING:
    from ckpt.history.job import Job
    from ckpt.objects.model import Commit
    from ckpt.pipeline.listing import JobProgress, JobSummary

STATUS_CHOICES = ("active", "completed", "failed", "expired")


@click.command("jobs")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUS_CHOICES),
    help="Only jobs with this status (repeat for several).",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only jobs labelled KEY=VALUE (repeat: all must match).",
)
@click.option(
    "--sizes",
    is_flag=True,
    help="Also show what each job takes on disk (SIZE): reads every object of every job.",
)
@json_option
def jobs(statuses: tuple[str, ...], tags: tuple[str, ...], sizes: bool, as_json: bool) -> None:
    """List the jobs: status, stages done, cost, tokens, last update.

    Also shows each job's current branch.

    A listing longer than the terminal goes through a pager.  What it shows
    of each job is cached (store key cache/jobs) and read again only for the
    jobs that changed, so listing thousands of jobs stays fast.

    With --sizes, SIZE is what the job's checkpoints take on disk, counting
    objects shared with other jobs (`ckpt stats` shows what each job holds
    alone); measuring it walks the whole store, so it is left out by default
    (and is null in --json).

    A job that cannot be read (a corrupt or missing object or ref) is listed
    as damaged, whatever the filters, and the command then exits 5.
    """
    from ckpt.pipeline.listing import list_jobs, parse_labels

    labels = parse_labels(tags)
    summaries = list_jobs(
        open_repo(), statuses=statuses, labels=labels, sizes=sizes, damaged="mark"
    )
    if as_json:
        out.emit_json({"jobs": [s.to_json() for s in summaries]})
        _fail_if_damaged(summaries)
        return
    if not summaries:
        if statuses or labels:
            out.echo("No jobs match.")
        else:
            out.echo("No jobs yet: a pipeline creates one with its first save (try `ckpt demo`).")
        return
    rows = [
        [
            s.name,
            out.status_text(s.status),
            s.branch,
            f"{len(s.stages)}/{s.total_stages}" if s.total_stages else str(len(s.stages)),
            out.money(s.cost),
            out.count(s.tokens),
            out.relative_time(s.updated),
            *([out.size(s.size)] if sizes else []),
        ]
        for s in summaries
    ]
    headers = ["NAME", "STATUS", "BRANCH", "STAGES", "COST", "TOKENS", "UPDATED"]
    if sizes:
        headers.append("SIZE")
    out.echo_paged(out.table(headers, rows, align_right=[3, 4, 5, 7], shrink=0))
    _fail_if_damaged(summaries)


def _fail_if_damaged(summaries: Sequence[JobSummary]) -> None:
    damaged = [s for s in summaries if s.damage is not None]
    if not damaged:
        return
    first = damaged[0]
    more = f" (and {len(damaged) - 1} more damaged jobs)" if len(damaged) > 1 else ""
    raise DamageFoundError(
        f"job {first.name} is damaged: {first.damage}{more}; "
        "`ckpt verify` names the last good checkpoints"
    )


@click.command("use")
@click.argument("job", required=False, shell_complete=complete_jobs)
@click.option("--clear", is_flag=True, help="Forget the current job of this store.")
def use(job: str | None, clear: bool) -> None:
    """Set the current job, so that commands may leave out JOB.

    After `ckpt use novel`, `ckpt log` is `ckpt log novel`, `ckpt cat
    outline` is `ckpt cat novel outline`, and so for every command that
    takes JOB first.  A first word that names a job is still that job.
    The choice is remembered for this store and this user ($CKPT_JOB, when
    set, wins over it).  Without JOB, shows the current job.
    """
    from ckpt.cli.currentjob import ENV_VAR, remember, remembered

    repo = open_repo()
    env = os.environ.get(ENV_VAR, "").strip()
    if clear:
        if job is not None:
            raise UserError("give either a JOB or --clear, not both")
        remember(repo.location, None)
        out.echo(f"No current job for {repo.location} any more.")
    elif job is not None:
        name = get_job(job).name
        remember(repo.location, name)
        out.echo(f"Using job {name}: `ckpt log` now means `ckpt log {name}`.")
    else:
        chosen = remembered(repo.location)
        if env:
            out.echo(f"{env} (from ${ENV_VAR})")
        elif chosen is not None:
            out.echo(f"{chosen} (from `ckpt use`)")
        else:
            out.echo(f"No current job: set one with `ckpt use JOB` or ${ENV_VAR}.")
        return
    if env:
        out.echo(f"warning: ${ENV_VAR}={env} is set, and wins while it is", err=True)


def progress_bar(fraction: float, width: int = 20) -> str:
    filled = round(fraction * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def status_lines(progress: JobProgress, ctx: click.Context | None = None) -> list[str]:
    """The text of ``ckpt status`` for ``progress``."""
    head = progress.head
    lines = [f"{progress.job}: {out.status_text(progress.status)} on branch {progress.branch}"]
    done = len(progress.stages)
    if progress.total_stages:
        fraction = progress.fraction or 0.0
        amount = (
            f"{done} of {progress.total_stages} stages done {progress_bar(fraction)} {fraction:.0%}"
        )
    else:
        amount = f"{done} stage{'' if done == 1 else 's'} done"
    if progress.stages:
        amount += ": " + ", ".join(progress.stages)
    lines.append(f"{'Progress:':<10} {amount}")
    if head is not None:
        lines.append(
            f"{'Cost:':<10} {out.money(head.total_cost)}, {out.count(head.total_tokens)} tokens"
        )
        lines.append(f"{'Last:':<10} {head.short_id} {what(head)}, {out.relative_time(head.time)}")
    if progress.status == "failed":
        where = f"at stage {progress.failed_stage}: " if progress.failed_stage else ""
        label = "Stopped:" if progress.interrupted else "Failed:"
        lines.append(f"{label:<10} {where}{progress.error or 'no error recorded'}")
    if progress.running:
        lines.append(f"{'Running:':<10} {', '.join(progress.running)}")
    if progress.eta is not None and progress.status == "active":
        lines.append(f"{'ETA:':<10} {eta_text(progress.eta)} (from the stages done so far)")
    for number, (stage, why) in enumerate(progress.stale.items()):
        lines.append(f"{'Stale:' if number == 0 else '':<10} {stage}: {why}")
    runner = _runner_line(progress)
    if runner is not None:
        lines.append(f"{'Runner:':<10} {runner}")
    lines.append(f"{'Next run:':<10} {_next_run(progress, ctx)}")
    return lines


def eta_text(eta: dt.timedelta) -> str:
    """``about 3m20s``; ``under a second`` for less."""
    if eta.total_seconds() < 1:
        return "under a second"
    return "about " + format_duration(eta)


def _runner_line(progress: JobProgress) -> str | None:
    holder = progress.runner
    if holder is None:
        return None
    if progress.runner_alive:
        return (
            f"{holder.describe()} (lease renewed {out.relative_time(holder.renewed)}, "
            f"expires {out.relative_time(holder.expires)})"
        )
    return f"none ({holder.describe()} stopped; its lease has lapsed)"


def _next_run(progress: JobProgress, ctx: click.Context | None) -> str:
    if progress.status == "completed":
        return "nothing left to do (completed); to redo from a stage: " + command_line(
            "checkout", progress.job, "STAGE", ctx=ctx
        )
    if progress.status == "expired":
        return "none: the job expired (`ckpt gc --expired` removes it)"
    if progress.resume_after is None:
        return "starts from the first stage"
    skipped = ", ".join(progress.stages)
    return f"resumes after stage {progress.resume_after} (skips {skipped})"


@click.command("status", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@json_option
def status(job: str, as_json: bool) -> None:
    """Show how far JOB got and where its next run resumes.

    Lists the stages done, the cost and tokens so far and the status.  For a
    pipeline run it also shows the stages running, the ETA of an active run,
    the stale stages with the reason (those a run found stale, and those
    whose inputs changed since they ran), and the process holding the job's
    lease (its runner), if one does.
    """
    from ckpt.pipeline.listing import job_progress

    progress = job_progress(get_job(job))
    if as_json:
        out.emit_json(progress.to_json())
        return
    out.echo_lines(status_lines(progress))


def _new_commits(job: Job, head: Commit, last_seen: str | None) -> list[Commit] | None:
    """Commits from ``last_seen`` (exclusive) to ``head``, oldest first; None if ``head``
    does not descend from ``last_seen`` (the branch was moved)."""
    found: list[Commit] = []
    for commit in job.walk(head.id):
        if commit.id == last_seen:
            found.reverse()
            return found
        found.append(commit)
        if len(found) > 10_000:
            break
    return None if last_seen is not None else list(reversed(found))


def _stage_event(commit: Commit, eta: dt.timedelta | None = None) -> str:
    if commit.stage is None:
        return f"  {out.status_text(commit.status)} {commit.message}".rstrip()
    mark = out.style("+", fg="green")
    left = "" if eta is None else f"  ETA {eta_text(eta)}"
    return (
        f"  {mark} {commit.stage:<16} {out.money(commit.cost):>9}  "
        f"{out.count(commit.tokens):>8} tokens  total {out.money(commit.total_cost)}{left}"
    )


@click.command("watch", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between looks at the store.",
)
@click.option(
    "--timeout",
    metavar="DURATION",
    help="Give up after this long (like 30m), with exit code 1.",
)
def watch(job: str, interval: float, timeout: str | None) -> None:
    """Follow JOB live until it completes or fails.

    Prints each checkpoint as it lands, with the ETA of an active run.

    Exits 0 when the job completes and 1 when it fails (or expires, or
    --timeout passes), so that `ckpt watch JOB && next-step` works.
    """
    from ckpt.cli.durations import parse_duration
    from ckpt.errors import CkptError
    from ckpt.pipeline.listing import job_progress

    limit = None if timeout is None else parse_duration(timeout).total_seconds()
    started = time.monotonic()
    the_job = get_job(job)
    progress = job_progress(the_job)
    head = progress.head
    last_seen = None if head is None else head.id
    done = len(progress.stages)
    total = f" of {progress.total_stages}" if progress.total_stages else ""
    noun = "stage" if done == 1 and not total else "stages"
    cost = 0.0 if head is None else head.total_cost
    out.echo(
        f"Watching {the_job.name} ({progress.status}, {done}{total} {noun} done, "
        f"{out.money(cost)}); Ctrl-C to stop."
    )
    while progress.status == "active":
        if limit is not None and time.monotonic() - started >= limit:
            raise CkptError(f"stopped watching {the_job.name} after {timeout}: it is still active")
        time.sleep(interval)
        the_job.refresh()
        progress = job_progress(the_job)
        head = progress.head
        if head is None or head.id == last_seen:
            continue
        new = _new_commits(the_job, head, last_seen)
        if new is None:
            out.echo(f"  branch {progress.branch} moved to {head.short_id} ({what(head)})")
        else:
            for number, commit in enumerate(new, 1):
                last = number == len(new) and progress.status == "active"
                out.echo(_stage_event(commit, progress.eta if last else None))
        last_seen = head.id
    out.echo_lines(status_lines(progress))
    if progress.status != "completed":
        failed = f" at stage {progress.failed_stage}" if progress.failed_stage else ""
        reason = f": {progress.error}" if progress.error else ""
        raise JobFailedError(f"job {the_job.name} {progress.status}{failed}{reason}")
