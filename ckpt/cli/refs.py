"""Moving a job's refs: ``checkout``, ``branch``, ``switch``, ``tag``.

Every command that moves or deletes a ref prints the exact command that
undoes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ckpt.cli import output as out
from ckpt.cli.complete import complete_branches, complete_jobs, complete_revisions, complete_tags
from ckpt.cli.context import command_line, get_job
from ckpt.cli.currentjob import JobCommand
from ckpt.cli.exits import UserError
from ckpt.cli.history import json_option, what

if TYPE_CHECKING:
    from ckpt.history.job import Job
    from ckpt.objects.ids import CommitId
    from ckpt.objects.model import Commit


def _at(commit: Commit) -> str:
    return f"{commit.short_id} ({what(commit)})"


@click.command("checkout", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.argument("rev", shell_complete=complete_revisions)
@click.option(
    "-b",
    "new_branch",
    metavar="NEW_BRANCH",
    help="Start branch NEW_BRANCH at REV and switch to it, leaving the current branch as it is.",
)
def checkout(job: str, rev: str, new_branch: str | None) -> None:
    """Roll JOB's current branch back to REV (or branch off there).

    The next run resumes from REV.

    The checkpoints rolled back stay reachable through the reflog (for 30
    days, or until retention prunes the job); the command prints how to undo
    the move.  With -b, start a new branch at REV instead.
    """
    the_job = get_job(job)
    previous_branch = the_job.branch_name
    result = the_job.checkout(rev, new_branch=new_branch)
    target = the_job.repo.objects.get_commit(result.new)
    name = the_job.name
    if result.created_branch:
        out.echo(
            f"Switched {name} to new branch {result.branch!r} at {_at(target)}; "
            f"{previous_branch!r} is unchanged."
        )
        out.echo(
            "Undo with: "
            + command_line("switch", name, previous_branch)
            + " && "
            + command_line("branch", name, "-d", result.branch)
        )
        return
    if result.old == result.new:
        out.echo(f"Branch {result.branch!r} of {name} is already at {_at(target)}.")
        return
    if result.rolled_back:
        count = len(result.rolled_back)
        cost = sum(c.cost for c in result.rolled_back)
        out.echo(f"Rolled back branch {result.branch!r} of {name} to {_at(target)}:")
        rows = [
            [out.style(c.short_id, fg="yellow"), what(c), out.money(c.cost)]
            for c in result.rolled_back
        ]
        out.echo_lines(["  " + line for line in out.table(["ID", "STAGE", "COST"], rows)])
        plural = "checkpoint" if count == 1 else "checkpoints"
        out.echo(f"{count} {plural} rolled back ({out.money(cost)} of work).")
    else:
        out.echo(
            f"Moved branch {result.branch!r} of {name} "
            f"from {out.short(result.old)} to {_at(target)}."
        )
    if target.stage is not None:
        out.echo(f"The next run resumes after stage {target.stage}.")
    if result.old is not None:
        out.echo("Undo with: " + command_line("checkout", name, result.old[:12]))


def _list_refs(
    job: Job,
    refs: dict[str, CommitId],
    *,
    current: str | None,
    as_json: bool,
    messages: dict[str, str] | None = None,
) -> None:
    commits = {oid: job.repo.objects.get_commit(oid) for oid in set(refs.values())}
    if as_json:
        out.emit_json(
            {
                "job": job.name,
                "current": current,
                "refs": [
                    {
                        "name": name,
                        "commit": oid,
                        "stage": commits[oid].stage,
                        "status": commits[oid].status,
                        "time": commits[oid].time.isoformat(),
                        "current": name == current,
                        **({} if messages is None else {"message": messages.get(name)}),
                    }
                    for name, oid in sorted(refs.items())
                ],
            }
        )
        return
    rows = []
    for name, oid in sorted(refs.items()):
        commit = commits[oid]
        label = out.style(name, fg="green", bold=True) if name == current else name
        row = [
            label,
            out.style(oid[:12], fg="yellow"),
            what(commit),
            out.relative_time(commit.time),
        ]
        if messages:
            row.append(messages.get(name, "").split("\n")[0])
        rows.append(row if current is None else ["*" if name == current else " ", *row])
    headers = ["NAME", "COMMIT", "STAGE", "UPDATED", *(["MESSAGE"] if messages else [])]
    out.echo_lines(out.table(headers if current is None else ["", *headers], rows))


def _deleted(kind: str, job: Job, name: str, oid: CommitId | None) -> None:
    """Say what deleting ``kind`` ``name`` did and how to undo it."""
    if oid is None:
        out.echo(f"Deleted {kind} {name!r} of {job.name} (it was garbled, and the reflog")
        out.echo("does not say where it pointed).")
        return
    out.echo(f"Deleted {kind} {name!r} of {job.name} (was {oid[:12]}).")
    out.echo("Undo with: " + command_line(kind, job.name, name, oid[:12]))


@click.command("branch", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.argument("name", required=False, shell_complete=complete_branches)
@click.argument("rev", required=False, shell_complete=complete_revisions)
@click.option(
    "-d",
    "--delete",
    "delete",
    metavar="NAME",
    shell_complete=complete_branches,
    help="Delete branch NAME (its checkpoints stay in the reflog).",
)
@json_option
def branch(job: str, name: str | None, rev: str | None, delete: str | None, as_json: bool) -> None:
    """List, create or delete JOB's branches.

    Without NAME, lists them; with NAME, creates branch NAME at REV
    (default HEAD); -d deletes one.

    Creating a branch does not switch to it; `ckpt switch` does, and
    `ckpt checkout JOB REV -b NAME` does both.
    """
    the_job = get_job(job)
    if delete is not None:
        if name is not None:
            raise UserError("give either a branch to create or -d NAME, not both")
        _deleted("branch", the_job, delete, the_job.delete_branch(delete))
        return
    if name is None:
        _list_refs(the_job, the_job.branches(), current=the_job.branch_name, as_json=as_json)
        return
    target = the_job.branch(name, at=rev)
    out.echo(f"Created branch {name!r} of {the_job.name} at {_at(target)}.")
    out.echo("Switch to it with: " + command_line("switch", the_job.name, name))


@click.command("switch", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.argument("branch_name", metavar="BRANCH", shell_complete=complete_branches)
def switch(job: str, branch_name: str) -> None:
    """Make BRANCH the current branch of JOB.

    The next run continues from its head.
    """
    the_job = get_job(job)
    previous = the_job.branch_name
    if previous == branch_name:
        out.echo(f"{the_job.name} is already on branch {branch_name!r}.")
        return
    the_job.switch(branch_name)
    head = the_job.head
    where = "" if head is None else f" at {_at(head)}"
    out.echo(f"Switched {the_job.name} to branch {branch_name!r}{where}.")
    out.echo("Undo with: " + command_line("switch", the_job.name, previous))


@click.command("tag", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.argument("name", required=False, shell_complete=complete_tags)
@click.argument("rev", required=False, shell_complete=complete_revisions)
@click.option(
    "-m",
    "--message",
    metavar="MESSAGE",
    help="Annotate the new tag with MESSAGE (shown by `ckpt show` and the tag list).",
)
@click.option(
    "-d",
    "--delete",
    "delete",
    metavar="NAME",
    shell_complete=complete_tags,
    help="Delete tag NAME.",
)
@json_option
def tag(
    job: str,
    name: str | None,
    rev: str | None,
    message: str | None,
    delete: str | None,
    as_json: bool,
) -> None:
    """List, create or delete JOB's tags.

    Without NAME, lists them; with NAME, tags REV (default HEAD) as NAME;
    -d deletes one.

    With -m the tag is annotated, as with git: the message (and when it was
    written) is kept with the tag.  A tag keeps its checkpoint (and the
    history before it) from retention and gc.
    """
    from ckpt.history.tags import tag_annotations

    the_job = get_job(job)
    if delete is not None:
        if name is not None or message is not None:
            raise UserError("give either a tag to create or -d NAME, not both")
        _deleted("tag", the_job, delete, the_job.delete_tag(delete))
        return
    if name is None:
        if message is not None:
            raise UserError("-m annotates a new tag: give its NAME (ckpt tag JOB NAME -m MESSAGE)")
        messages = {tag: note.message for tag, note in tag_annotations(the_job).items()}
        _list_refs(the_job, the_job.tags(), current=None, as_json=as_json, messages=messages)
        return
    target = the_job.tag(name, rev, message=message)
    annotated = "" if message is None else " (annotated)"
    out.echo(f"Tagged {_at(target)} of {the_job.name} as {name!r}{annotated}.")
