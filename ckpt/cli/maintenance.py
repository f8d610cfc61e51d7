"""Keeping a store healthy and small: ``verify``, ``repair``, ``gc``, ``stats``, ``rm``."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from ckpt.cli import output as out
from ckpt.cli.complete import complete_jobs
from ckpt.cli.context import command_line, get_job, open_repo
from ckpt.cli.exits import DamageFoundError, UserError
from ckpt.cli.history import json_option, what
from ckpt.cli.progress import progress_events
from ckpt.errors import CkptError

if TYPE_CHECKING:
    from ckpt.maintenance.verify import VerifyReport
    from ckpt.repository import Repository


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.timedelta | None:
    """Option callback: a ``30d`` / ``12h`` / ``90m`` / ``1w`` duration (usage error if not)."""
    from ckpt.cli.durations import InvalidDurationError, parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except InvalidDurationError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _verify_lines(repo: Repository, report: VerifyReport, ctx: click.Context) -> list[str]:
    lines: list[str] = []
    for problem in report.problems:
        lines.append(f"{out.style(problem.kind, fg='red', bold=True)} {problem.subject}")
        lines.append(f"  {problem.message}")
        if problem.objects:
            count = len(problem.objects)
            shown = ", ".join(oid[:12] for oid in problem.objects[:8])
            more = f" and {count - 8} more" if count > 8 else ""
            lines.append(f"  objects it held, now missing ({count}): {shown}{more}")
        if problem.jobs:
            lines.append(
                f"  breaks job{'s' if len(problem.jobs) > 1 else ''}: {', '.join(problem.jobs)}"
            )
        if problem.commits:
            shown = ", ".join(c[:12] for c in problem.commits[:8])
            more = f" and {len(problem.commits) - 8} more" if len(problem.commits) > 8 else ""
            lines.append(f"  breaks checkpoints: {shown}{more}")
    for name, health in sorted(report.jobs.items()):
        if health.ok:
            continue
        count = len(health.broken_commits)
        lines.append("")
        lines.append(f"Job {name}: {count} broken checkpoint{'' if count == 1 else 's'}")
        job = repo.job(name)
        heads = job.refs.all_refs()
        try:
            current: str | None = job.branch_name
        except CkptError:
            current = None
        for branch, good in sorted(health.last_good.items()):
            if good is not None and good == heads.get("refs/heads/" + branch):
                continue  # this branch's head is intact
            if good is None:
                lines.append(f"  branch {branch}: no intact checkpoint left")
                continue
            try:
                label = what(repo.objects.get_commit(good))
            except CkptError:
                label = "?"
            lines.append(
                f"  branch {branch}: last good checkpoint {good[:12]} ({label}); roll back with:"
            )
            if branch == current:
                lines.append("    " + command_line("checkout", name, good[:12], ctx=ctx))
            else:
                lines.append(
                    "    "
                    + command_line("switch", name, branch, ctx=ctx)
                    + " && "
                    + command_line("checkout", name, good[:12], ctx=ctx)
                )
    return lines


@click.command("verify")
@click.argument("jobs", nargs=-1, shell_complete=complete_jobs)
@click.option(
    "--full", is_flag=True, help="Also re-hash every stage value (and, with no JOB, every object)."
)
@json_option
@click.pass_context
def verify(ctx: click.Context, jobs: tuple[str, ...], full: bool, as_json: bool) -> None:
    """Check the store for damage and say what it breaks.

    Checks refs, reachability and (with --full) the hash of every object.

    For each problem, names the jobs and checkpoints it breaks and, per
    branch, the last good checkpoint to roll back to.  Exits 5 when it finds
    damage.  Without --full, commits and trees are hashed and stage values
    only checked to exist.
    """
    from ckpt.maintenance.verify import verify as run_verify

    repo = open_repo()
    names = [get_job(name).name for name in jobs] if jobs else repo.job_names()
    with progress_events(as_json) as events:
        report = run_verify(repo, full=full, jobs=names if jobs else None, events=events)
    if as_json:
        out.emit_json(report.to_json())
    else:
        out.echo_lines(_verify_lines(repo, report, ctx))
        if report.ok:
            scope = f"{len(names)} job{'' if len(names) == 1 else 's'}"
            out.echo(
                f"Checked {out.count(report.objects_checked)} objects "
                f"({out.size(report.bytes_checked)} read) in {scope}: no problems found."
            )
    if not report.ok:
        broken = sorted({job for p in report.problems for job in p.jobs})
        count = len(report.problems)
        affects = (
            f"; it breaks job{'s' if len(broken) > 1 else ''} {', '.join(broken)}" if broken else ""
        )
        raise DamageFoundError(
            f"verify found {count} problem{'' if count == 1 else 's'}{affects}; " + _advice(report)
        )


def _advice(report: VerifyReport) -> str:
    """What to do about what verify found: repair what can be repaired, roll back the rest."""
    kinds = {problem.kind for problem in report.problems}
    if kinds <= REF_PROBLEMS:
        return "run `ckpt repair` (it restores refs from the reflog and rewrites garbled records)"
    return (
        "run `ckpt repair` (add --from REMOTE to copy clean copies from a remote), "
        "then re-run the damaged stages or roll back to the last good checkpoints shown above"
    )


#: Problems ``ckpt repair`` fixes by itself (from the reflog, or what a record still holds).
REF_PROBLEMS = frozenset({"missing-head", "missing-ref", "bad-ref", "bad-record"})


@click.command("repair")
@click.option(
    "--from",
    "source",
    metavar="REMOTE",
    help="Copy clean copies of damaged or missing objects from this remote (a name or URL).",
)
def repair(source: str | None) -> None:
    """Restore damaged refs from the reflog; move corrupt objects aside.

    Restores a job's lost HEAD, and branches and tags that are missing or
    garbled, to where the reflog says they were.  Moves every corrupt object
    to quarantine/, so that the next save of the same value writes a clean
    copy (re-run the stage), and with --from copies a clean copy of each
    damaged or missing object from REMOTE.  Ends with a full verify; exits 5
    if damage remains.
    """
    from ckpt.maintenance.repair import repair as run_repair

    repo = open_repo()
    report = run_repair(repo, remote=source)
    for restored in report.refs_restored:
        if restored.kind == "missing-head":
            out.echo(f"Restored the HEAD of job {restored.job}.")
        else:
            name = restored.ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
            kind = "tag" if restored.ref.startswith("refs/tags/") else "branch"
            assert restored.logged is not None
            out.echo(
                f"Restored {kind} {name} of job {restored.job} to {restored.logged[:12]} "
                "(from the reflog)."
            )
    for job in report.records:
        out.echo(
            f"Rewrote the garbled record of job {job} with what could be read of it "
            f"(the old one is at quarantine/meta-{job})."
        )
    for key, done in report.packs:
        if done == "rewritten":
            out.echo(f"Rewrote {key}, whose header was damaged.")
        elif done == "quarantined":
            out.echo(f"Moved {key}, whose index was damaged, to quarantine/.")
    if report.quarantined:
        out.echo(
            f"Moved {len(report.quarantined)} corrupt object(s) to quarantine/: "
            "the next save of the same value writes a clean copy."
        )
    if report.healed:
        out.echo(f"Copied {len(report.healed)} clean object(s) from {source}.")
    after = report.after
    if after.ok:
        out.echo("The store is healthy: a full verify found no problems.")
        return
    out.echo_lines(_verify_lines(repo, after, click.get_current_context()))
    count = len(after.problems)
    hint = (
        "re-run the stages that saved the damaged values (see the checkpoints above)"
        if source is not None
        else "re-run the stages that saved them, or repair --from a remote that has them"
    )
    raise DamageFoundError(f"{count} problem{'' if count == 1 else 's'} remain; {hint}")


@click.command("gc")
@click.option("--dry-run", "-n", is_flag=True, help="Only report what would be deleted.")
@click.option(
    "--older-than",
    callback=duration,
    metavar="DURATION",
    help="Delete jobs whose last checkpoint is older than this (like 30d).",
)
@click.option(
    "--keep-last",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep only the newest N checkpoints of every branch (tags keep theirs).",
)
@click.option(
    "--keep-daily",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep the newest checkpoint of each of the last N days with one, per branch.",
)
@click.option(
    "--keep-weekly",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep the newest checkpoint of each of the last N weeks with one, per branch.",
)
@click.option(
    "--keep-monthly",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep the newest checkpoint of each of the last N months with one, per branch.",
)
@click.option("--expired", is_flag=True, help="Delete jobs whose TTL has passed.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["completed", "failed"]),
    help="Delete jobs with this status (repeatable).",
)
@click.option(
    "--grace",
    callback=duration,
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Keep unreachable objects younger than this (protects saves in flight).",
)
@click.option(
    "--reflog-expiry",
    callback=duration,
    default="30d",
    show_default=True,
    metavar="DURATION",
    help="Let reflog entries older than this keep nothing (0s: what only the reflog keeps goes).",
)
@json_option
def gc(
    dry_run: bool,
    older_than: dt.timedelta | None,
    keep_last: int | None,
    keep_daily: int | None,
    keep_weekly: int | None,
    keep_monthly: int | None,
    expired: bool,
    statuses: tuple[str, ...],
    grace: dt.timedelta,
    reflog_expiry: dt.timedelta,
    as_json: bool,
) -> None:
    """Apply retention, then delete unreachable old objects.

    Unreachable objects are deleted once older than the grace period.

    Retention deletes the jobs matching every given criterion (--older-than,
    --expired, --status) and thins every branch's history: like restic's
    forget, a checkpoint is kept if --keep-last keeps it (the newest N) or it
    is the newest of one of the last N days (--keep-daily), ISO weeks
    (--keep-weekly) or months (--keep-monthly) that have one, by commit time
    in UTC; the rest are let go.  Without these options each job's own
    keep-last setting applies.  Then objects no job, tag or recent reflog
    entry reaches are removed.  Reports objects and bytes freed, or with
    --dry-run what would be (retention included), and how many checkpoints
    only the reflog still keeps (a deleted branch's, a rolled-back
    checkout's: for --reflog-expiry after the move, so that it can be undone).
    """
    from ckpt.maintenance.gc import collect
    from ckpt.maintenance.reflog import kept_by_reflog
    from ckpt.maintenance.retention import apply_retention

    repo = open_repo()
    retention = apply_retention(
        repo,
        keep_last=keep_last,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        older_than=older_than,
        expired=expired,
        statuses=statuses,
        dry_run=dry_run,
    )
    with progress_events(as_json) as events:
        report = collect(
            repo,
            grace=grace,
            dry_run=dry_run,
            progress=events,
            plan=retention.plan if dry_run else None,
            reflog_expiry=reflog_expiry,
        )
    reflog_only = kept_by_reflog(repo, expiry=reflog_expiry)
    if as_json:
        out.emit_json(
            {
                "retention": retention.to_json(),
                "gc": report.to_json(),
                "kept_by_reflog": reflog_only,
            }
        )
        return
    would = "Would delete" if dry_run else "Deleted"
    if retention.deleted_jobs:
        out.echo(
            f"{would} {len(retention.deleted_jobs)} job(s): {', '.join(retention.deleted_jobs)}"
        )
    for pruned in retention.pruned:
        verb = "Would cut" if dry_run else "Cut"
        out.echo(
            f"{verb} the history of {pruned.job}: "
            f"{pruned.dropped_commits} older checkpoint(s) let go"
        )
    verb = "Would remove" if dry_run else "Removed"
    out.echo(
        f"{verb} {out.count(report.deleted)} unreachable object(s), "
        f"{out.size(report.deleted_bytes)}; "
        f"{out.count(report.reachable)} reachable kept"
        + (
            f", {out.count(report.kept_by_grace)} younger than the grace period kept"
            if report.kept_by_grace
            else ""
        )
        + "."
    )
    if reflog_only:
        out.echo(_reflog_note(reflog_only, reflog_expiry))


def _reflog_note(kept: dict[str, int], expiry: dt.timedelta) -> str:
    """Why gc kept what a deleted branch or a rollback left, and how to let it go."""
    from ckpt.cli.durations import format_duration

    total = sum(kept.values())
    jobs = sorted(kept.items(), key=lambda item: (-item[1], item[0]))
    where = ", ".join(f"{job}: {count}" for job, count in jobs[:5])
    if len(jobs) > 5:
        where += f", and {len(jobs) - 5} more jobs"
    noun = "checkpoint is" if total == 1 else "checkpoints are"
    days, rest = divmod(int(expiry.total_seconds()), 86400)
    how_long = (
        f"{days} day{'' if days == 1 else 's'}" if days and not rest else format_duration(expiry)
    )
    return (
        f"{total} {noun} kept only by the reflog ({where}): deleted branches and rolled-back "
        f"moves stay {how_long} so that they can be undone; "
        "`ckpt gc --reflog-expiry 0s` lets them go now."
    )


@click.command("stats")
@json_option
def stats(as_json: bool) -> None:
    """Show sizes, dedup and compression, for the store and each job.

    Counts objects, logical vs stored bytes, the dedup and compression
    ratios, and each job's sizes.

    Logical bytes are what the checkpoints would take kept in full, one copy
    per checkpoint; unique bytes are the stored objects uncompressed; stored
    bytes are the size of the packs (and loose objects) on the backend, the
    objects' own stored forms being part of it; a job's exclusive bytes are
    what deleting it and running gc would free.
    """
    from ckpt.maintenance.stats import store_stats

    repo = open_repo()
    with out.progress("Reading objects") as advance:
        result = store_stats(repo, progress=advance)
    if as_json:
        out.emit_json(result.to_json())
        return
    if not result.objects and not result.jobs:
        out.echo(
            f"The store at {repo.location} is empty: no jobs, no objects "
            "(a job's first save fills it; try `ckpt demo`)."
        )
        return
    kinds = ", ".join(
        f"{n:,} {kind}{'' if n == 1 else 's'}" for kind, n in result.objects_by_kind.items() if n
    )
    fields = [
        ("Objects", f"{out.count(result.objects)} ({kinds})"),
        ("Logical", f"{out.size(result.logical_bytes)} (every checkpoint in full)"),
        ("Unique", f"{out.size(result.unique_bytes)} (after dedup, uncompressed)"),
        (
            "Stored",
            f"{out.size(result.stored_bytes)} (on disk, {out.count(result.packs)} "
            f"pack{'' if result.packs == 1 else 's'}; the objects alone "
            f"{out.size(result.object_bytes)})",
        ),
        ("Dedup", out.ratio(result.dedup_ratio)),
        ("Compression", out.ratio(result.compression_ratio)),
        (
            "Unreachable",
            f"{out.count(result.unreachable_objects)} objects, "
            f"{out.size(result.unreachable_bytes)} (`ckpt gc` removes them)",
        ),
    ]
    if result.unreadable_objects:
        fields.append(("Unreadable", f"{result.unreadable_objects} objects (run `ckpt verify`)"))
    out.echo_lines([f"{name + ':':<13}{value}" for name, value in fields])
    if result.jobs:
        out.echo()
        rows = [
            [
                j.job,
                out.count(j.commits),
                out.count(j.objects),
                out.size(j.logical_bytes),
                out.size(j.stored_bytes),
                out.size(j.exclusive_bytes),
            ]
            for j in result.jobs
        ]
        headers = ["JOB", "COMMITS", "OBJECTS", "LOGICAL", "STORED", "EXCLUSIVE"]
        out.echo_lines(out.table(headers, rows, align_right=[1, 2, 3, 4, 5], shrink=0))


@click.command("rm")
@click.argument("jobs", nargs=-1, required=True, shell_complete=complete_jobs)
@click.option("--force", "-f", is_flag=True, help="Also delete jobs that are still active.")
def rm(jobs: tuple[str, ...], force: bool) -> None:
    """Delete JOBS: their branches, tags, reflog and record.

    Their objects stay until the next `ckpt gc` (objects shared with other
    jobs stay as long as those need them).  An active job may still be
    running, so deleting one needs --force.
    """
    repo = open_repo()
    found = [get_job(name) for name in dict.fromkeys(jobs)]
    if not force:
        for job in found:
            if job.status == "active":
                raise UserError(
                    f"job {job.name!r} is active (it may still be running); "
                    "add --force to delete it anyway"
                )
    for job in found:
        repo.delete_job(job.name)
        out.echo(f"Deleted job {job.name}.")
    out.echo(
        "Its objects are removed by the next `ckpt gc`."
        if len(found) == 1
        else "Their objects are removed by the next `ckpt gc`."
    )
