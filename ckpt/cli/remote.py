"""Remotes, git-style: ``remote``, ``push``, ``pull`` and ``clone``.

Each command calls one function of :mod:`ckpt.transfer.remote` and prints, like git,
one line per ref that changed (or was refused), then what was copied.
Refused refs (a non-fast-forward without ``--force``, or a ref another
writer moved during the transfer) are listed with a hint and make the
command exit with the conflict code, after everything else was transferred.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

from ckpt.cli import output as out
from ckpt.cli.complete import complete_jobs
from ckpt.cli.context import command_line, get_job, open_repo, settings
from ckpt.cli.history import json_option, what
from ckpt.cli.progress import progress_events
from ckpt.errors import CkptError, ConflictError
from ckpt.storage import shown_url

if TYPE_CHECKING:
    from ckpt.repository import Repository
    from ckpt.transfer.remote import RefUpdate, TransferReport

HEADS = "refs/heads/"

DEFAULT_STORE = ".ckpt"
DEFAULT_REMOTE = "origin"  # the library's default; repeated so that --help imports no library

_STATUS_TEXT = {
    "created": "new branch",
    "fast-forward": "fast-forward",
    "forced": "forced update",
    "rejected": "rejected",
    "diverged": "diverged",
    "conflict": "conflict",
}
_STATUS_COLOUR = {"created": "green", "fast-forward": "green", "forced": "yellow"}


class RefsRejectedError(ConflictError):
    """Some refs were not moved (exit code 4); they were listed, with a hint, before."""


def _complete_remotes(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    try:
        from ckpt.repository import open as open_store
        from ckpt.transfer.remote import remotes

        store = ctx.find_root().params.get("store")
        with open_store(store if isinstance(store, str) else None) as repo:
            names = remotes(repo)
    except Exception:  # completion must never break the user's shell
        return []
    return [CompletionItem(name) for name in sorted(names) if name.startswith(incomplete)]


def _ref_name(ref: str) -> str:
    if ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :]
    if ref.startswith("refs/tags/"):
        return "tag " + ref[len("refs/tags/") :]
    return ref


def _change(update: RefUpdate) -> str:
    if update.old is None:
        return out.short(update.new)
    dots = "..." if update.status == "forced" else ".."
    return f"{out.short(update.old)}{dots}{out.short(update.new)}"


def _status(update: RefUpdate) -> str:
    text = _STATUS_TEXT.get(update.status, update.status)
    if update.status == "created" and update.ref.startswith("refs/tags/"):
        text = "new tag"
    if update.status in ("rejected", "diverged", "conflict"):
        return out.style(f"{text} ({update.reason})", fg="red")
    return out.style(text, fg=_STATUS_COLOUR.get(update.status))


def ref_lines(updates: Sequence[RefUpdate]) -> list[str]:
    """One aligned line per ref that moved or was refused: job, ref, old..new, what happened."""
    rows = [
        [u.job, _ref_name(u.ref), _change(u), _status(u)]
        for u in updates
        if u.status != "up-to-date"
    ]
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]


#: Refused branches explained one by one in the hints; the rest are counted.
DETAILED_HINTS = 3


def _hints(
    report: TransferReport, *, pushing: bool, remote: str, repo: Repository | None = None
) -> list[str]:
    """What to do about refused refs, as git-style ``hint:`` lines: for each branch, whether
    the other side is ahead or the two diverged (with both heads), and the real choices."""
    refused = [
        u
        for u in report.updates
        if u.status in ("rejected", "diverged") and u.ref.startswith(HEADS)
    ]
    lines: list[str] = []
    for update in refused[:DETAILED_HINTS]:
        lines += _branch_hints(update, pushing=pushing, remote=remote, repo=repo)
    if len(refused) > DETAILED_HINTS:
        lines.append(f"... and {len(refused) - DETAILED_HINTS} more branches refused likewise.")
    if any(u.status == "rejected" and u.ref.startswith("refs/tags/") for u in report.updates):
        lines.append("A tag of the same name points elsewhere on the other side; --force moves it.")
    if any(u.status == "conflict" for u in report.updates):
        lines.append("Another writer moved a ref during the transfer; run the command again.")
    return ["hint: " + line[:1].upper() + line[1:] for line in lines]


def _branch_hints(
    update: RefUpdate, *, pushing: bool, remote: str, repo: Repository | None
) -> list[str]:
    job, branch = update.job, update.ref[len(HEADS) :]
    there = remote if "/" not in remote and "://" not in remote else "the remote"
    ours, theirs = (update.new, update.old) if pushing else (update.old, update.new)
    assert theirs is not None and ours is not None  # a refused branch exists on both sides

    def at(oid: str) -> str:
        label = ""
        if repo is not None:
            try:
                label = f" ({what(repo.objects.get_commit(oid))})"  # type: ignore[arg-type]
            except CkptError:
                label = ""  # not in this store (a push's other side)
        return oid[:12] + label

    push_force = command_line("push", "--force", remote, job)
    if update.status == "rejected":  # a push: the other side has everything and more
        return [
            f"{there} has checkpoints on branch {branch} of {job} that this store lacks "
            "(and lacks none of this store's).",
            f"To take them: {command_line('pull', remote, job)} (then nothing is left to push)",
            f"To replace {there}'s branch with this store's: {push_force}",
        ]
    lines = [
        f"Branch {branch} of {job} has diverged: here it is at {at(ours)}, on {there} at "
        f"{at(theirs)}; each has checkpoints the other lacks.",
    ]
    compare = command_line("diff", job, branch, theirs)
    keep = command_line(
        "branch", job, f"{there if there != 'the remote' else 'remote'}/{branch}", theirs
    )
    if pushing:
        lines += [
            f"To compare them: {command_line('pull', remote, job)} (refused too, it fetches "
            f"{there}'s checkpoints and keeps yours), then {compare}",
            f"To replace {there}'s branch with this store's: {push_force}",
        ]
    else:
        lines += [
            f"{there}'s checkpoints were fetched. To compare them: {compare}",
            f"To keep both, {there}'s as a branch here: {keep}",
            f"To take {there}'s (this store's stay in the reflog): "
            f"{command_line('pull', '--force', remote, job)}",
            f"To replace {there}'s branch with this store's: {push_force}",
        ]
    return lines


def _print_report(
    report: TransferReport,
    *,
    heading: str,
    url: str,
    pushing: bool,
    remote: str,
    repo: Repository | None = None,
) -> None:
    lines = ref_lines(report.updates)
    if lines:
        out.echo(heading)
        out.echo_lines(lines)
    direction = "to" if pushing else "from"
    if report.objects_copied:
        out.echo(
            f"Copied {out.count(report.objects_copied)} object"
            f"{'' if report.objects_copied == 1 else 's'} "
            f"({out.size(report.bytes_copied)}) {direction} {url}."
        )
    elif not lines:
        out.echo("Everything up-to-date.")
    for hint in _hints(report, pushing=pushing, remote=remote, repo=repo):
        out.echo(hint, err=True)


def _check_refused(report: TransferReport) -> None:
    refused = report.rejected
    if refused:
        count = len(refused)
        raise RefsRejectedError(
            f"{count} ref{' was' if count == 1 else 's were'} refused (see the hints above); "
            "everything else was transferred"
        )


def _transfer_json(report: TransferReport, url: str, **extra: str) -> dict[str, object]:
    return {"remote": url, **extra, **report.to_json()}


# -- remote ---------------------------------------------------------------------


def _remote_subcommands() -> list[click.Command]:
    """``remote add`` and ``remote remove`` (built here so that the module's top-level
    commands are exactly the ones listed in the command table)."""

    @click.command("add")
    @click.argument("name")
    @click.argument("url")
    def add(name: str, url: str) -> None:
        """Register URL (a store path or URL) as remote NAME.

        A relative path, alone or in a file:// or sqlite:// URL, is made
        absolute.
        """
        from ckpt.transfer.remote import add_remote

        kept = add_remote(open_repo(), name, url)
        out.echo(f"Added remote {name}: {shown_url(kept)}")
        if kept.startswith("sqlite:///") and os.path.dirname(kept[len("sqlite://") :]) == "/":
            relative = "sqlite://" + kept[len("sqlite:///") :]
            out.echo(
                f"note: three slashes make an absolute path, a file at the root of the "
                f"filesystem; for one in this directory write {relative}",
                err=True,
            )

    @click.command("remove")
    @click.argument("name", shell_complete=_complete_remotes)
    def remove(name: str) -> None:
        """Forget remote NAME (the store it names is not touched)."""
        from ckpt.transfer.remote import remove_remote

        remove_remote(open_repo(), name)
        out.echo(f"Removed remote {name}.")

    return [add, remove]


@click.group("remote", invoke_without_command=True, commands=_remote_subcommands())
@click.option("-v", "--verbose", is_flag=True, help="Show each remote's URL.")
@json_option
@click.pass_context
def remote(ctx: click.Context, verbose: bool, as_json: bool) -> None:
    """List, add or remove remotes (other stores).

    Lists the remotes of this store (with -v, their URLs).

    A remote is another store (a path or any store URL: s3://, sqlite://,
    redis://, postgresql://, ...) known by a short name, for `ckpt push` and
    `ckpt pull`.

    \b
      ckpt remote add NAME URL   register a remote (a relative path is made absolute)
      ckpt remote remove NAME    forget it (the other store is not touched)
    """
    if ctx.invoked_subcommand is not None:
        return
    from ckpt.transfer.remote import remotes

    known = remotes(open_repo())
    if as_json:
        out.emit_json(
            {
                "remotes": [
                    {"name": name, "url": shown_url(url)} for name, url in sorted(known.items())
                ]
            }
        )
        return
    if not verbose:
        out.echo_lines(sorted(known))
        return
    width = max((len(name) for name in known), default=0)
    out.echo_lines([f"{name:<{width}}  {shown_url(url)}" for name, url in sorted(known.items())])


# -- push and pull --------------------------------------------------------------

_force_option = click.option(
    "--force", "-f", is_flag=True, help="Also move refs that are not fast-forwards."
)


@click.command("push")
@click.argument("remote_name", metavar="[REMOTE]", required=False, shell_complete=_complete_remotes)
@click.argument("jobs", nargs=-1, shell_complete=complete_jobs)
@_force_option
@json_option
def push(remote_name: str | None, jobs: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Send jobs to another store (a remote or a store URL).

    Sends JOBS (default: every job) to REMOTE (a remote name or a store
    URL; default origin).

    A REMOTE with no store yet gets one, created empty before the push (a
    location that holds anything else is refused and left alone).  Copies
    only the objects the remote lacks, checking each one's hash on
    arrival, in parallel; then moves the remote's branches and tags by
    compare-and-swap.  A branch whose remote tip is not an ancestor of ours
    is refused unless --force.  A push that is interrupted leaves the remote
    consistent; running it again copies only what is still missing.
    A terminal shows a progress bar; with --json, progress events go to
    stderr as JSON lines.
    """
    from ckpt.transfer.remote import push as push_jobs
    from ckpt.transfer.remote import remote_url

    repo = open_repo()
    name = remote_name or DEFAULT_REMOTE
    url = shown_url(remote_url(repo, name))
    names = [get_job(job).name for job in dict.fromkeys(jobs)] if jobs else None
    with progress_events(as_json) as events:
        report = push_jobs(repo, name, names, force=force, progress=events)
    if as_json:
        out.emit_json(_transfer_json(report, url))
    else:
        if report.created_store:
            out.echo(f"Created a ckpt store at {url} (there was none).")
        _print_report(report, heading=f"To {url}", url=url, pushing=True, remote=name, repo=repo)
    _check_refused(report)


@click.command("pull")
@click.argument("remote_name", metavar="[REMOTE]", required=False, shell_complete=_complete_remotes)
@click.argument("jobs", nargs=-1)
@_force_option
@json_option
def pull(remote_name: str | None, jobs: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Fetch jobs from another store into this one.

    Fetches JOBS (default: every job of the remote) from REMOTE (default
    origin).

    Copies only the objects this store lacks, checking each one's hash on
    arrival, then moves this store's branches and tags to the remote's.  A
    local branch with checkpoints the remote lacks is not moved unless
    --force.  An interrupted pull leaves this store consistent and resumes
    where it stopped.  A terminal shows a progress bar; with --json,
    progress events go to stderr as JSON lines.
    """
    from ckpt.history.names import job_name
    from ckpt.transfer.remote import pull as pull_jobs
    from ckpt.transfer.remote import remote_url

    repo = open_repo()
    name = remote_name or DEFAULT_REMOTE
    url = shown_url(remote_url(repo, name))
    names = [job_name(job) for job in dict.fromkeys(jobs)] if jobs else None
    with progress_events(as_json) as events:
        report = pull_jobs(repo, name, names, force=force, progress=events)
    if as_json:
        out.emit_json(_transfer_json(report, url))
    else:
        _print_report(report, heading=f"From {url}", url=url, pushing=False, remote=name, repo=repo)
    _check_refused(report)


# -- clone ----------------------------------------------------------------------


@click.command("clone")
@click.argument("url")
@click.argument("path", required=False, metavar="[PATH]")
@json_option
def clone(url: str, path: str | None, as_json: bool) -> None:
    """Copy the store at URL, with every job, into a new store.

    The new store is at PATH (default: --store, or ./.ckpt), with URL as its
    remote origin.

    Run `ckpt pull` there later to fetch new checkpoints, `ckpt push` to
    send yours back.  If a clone is interrupted, `ckpt --store PATH pull`
    finishes it.  A terminal shows a progress bar; with --json, progress
    events go to stderr as JSON lines.
    """
    from ckpt.errors import StoreExistsError
    from ckpt.storage import absolute_location
    from ckpt.transfer.remote import clone as clone_store

    where = path or settings().store or DEFAULT_STORE
    source = absolute_location(url)
    shown = shown_url(source)
    try:
        with progress_events(as_json) as events:
            repo, report = clone_store(source, where, progress=events)
    except StoreExistsError:
        raise StoreExistsError(
            f"{where} already holds a ckpt store; pull into it instead "
            f"(`ckpt --store {where} pull {shown}`)"
        ) from None
    jobs = repo.job_names()
    repo.close()
    if as_json:
        out.emit_json(_transfer_json(report, shown, path=where))
        return
    _print_report(report, heading=f"From {shown}", url=shown, pushing=False, remote=source)
    count = len(jobs)
    out.echo(
        f"Cloned {count} job{'' if count == 1 else 's'} into {where}; its remote origin is {shown}."
    )
    if os.path.basename(os.path.normpath(where)) != DEFAULT_STORE:
        out.echo(f"Use it with --store {where}, or: export CKPT_DIR={where}")
    _check_refused(report)
