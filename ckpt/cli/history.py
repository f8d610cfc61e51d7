"""Reading a job's history: ``log``, ``show``, ``cat``, ``diff``, ``reflog``.

These commands only read.  Each offers ``--json`` (``cat`` prints JSON by
nature) with the schema documented in ``docs/cli.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from ckpt.cli import output as out
from ckpt.cli.complete import complete_jobs, complete_revisions
from ckpt.cli.context import command_line, get_job
from ckpt.cli.currentjob import JobCommand
from ckpt.cli.exits import UserError
from ckpt.cli.logtext import CUT_NOTE, log_commits, log_lines
from ckpt.cli.logtext import decoration_text as _decoration_text
from ckpt.cli.logtext import what as what
from ckpt.cli.pager import page

if TYPE_CHECKING:
    from ckpt.history.job import Job
    from ckpt.objects.model import Commit

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (schema in docs/cli.md)."
)


def job_or_commit(name: str, rev: str | None) -> tuple[Job, str | None]:
    """JOB and REV; or, when no REV is given and NAME is no job but a commit-id prefix, the
    job that has that commit and the commit (see :mod:`ckpt.history.lookup`)."""
    from ckpt.cli.context import open_repo
    from ckpt.history.lookup import find_commit, looks_like_commit

    if rev is None and looks_like_commit(name) and not open_repo().has_job(name):
        found = find_commit(open_repo(), name)
        return found.job, found.commit.id
    return get_job(name), rev


# -- commands -------------------------------------------------------------------


class StagesAfterDashes(JobCommand):
    """A command that takes ``-- STAGE...`` after its arguments, as ``git log -- PATH``: the
    stages are kept in ``ctx.meta["stages"]``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta["stages"] = tuple(args[split + 1 :])
            args = args[:split]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- STAGE...]"]


@click.command("log", cls=StagesAfterDashes)
@click.argument("job", shell_complete=complete_jobs)
@click.argument("rev", required=False, shell_complete=complete_revisions)
@click.option(
    "-n", "--max-count", "limit", type=click.IntRange(min=1), help="Show at most N checkpoints."
)
@click.option("--oneline", is_flag=True, help="One line per checkpoint.")
@click.option("--graph", is_flag=True, help="Draw branches and forks on the left, like git.")
@click.option(
    "--all", "all_refs", is_flag=True, help="Show every branch and tag, not only REV's history."
)
@click.option(
    "--all-commits",
    is_flag=True,
    help="Also show internal commits: partial checkpoints, failed attempts, LangGraph writes.",
)
@json_option
def log(
    job: str,
    rev: str | None,
    limit: int | None,
    oneline: bool,
    graph: bool,
    all_refs: bool,
    all_commits: bool,
    as_json: bool,
) -> None:
    """Show the checkpoints of JOB, newest first.

    Starts at REV (default HEAD) and follows first parents back to the first
    checkpoint, or to where retention cut the history.  After `--`, only the
    checkpoints that added, changed or removed one of the STAGEs are shown
    (`ckpt log novel -- outline`).

    Internal commits are folded into one note at the end: a stage's partial
    checkpoints, a failed attempt that a later run resumed, LangGraph's
    pending writes (unless a branch or tag points at one); --all-commits
    shows them, and --json lists every commit.  A LangGraph checkpoint is
    shown by the node that produced it and its step, as `model (step 3)`.
    """
    from ckpt.history.documents import log_document

    stages: tuple[str, ...] = click.get_current_context().meta.get("stages", ())
    if all_refs and rev is not None:
        raise UserError("give either REV or --all, not both")
    if stages and graph:
        raise UserError("--graph draws whole histories; leave it out to list by stage")
    the_job = get_job(job)
    page()
    if as_json:
        out.emit_json(log_document(the_job, rev, all_refs=all_refs, limit=limit, stages=stages))
        return
    folded = log_commits(
        the_job, rev, all_refs=all_refs, limit=limit, stages=stages, fold=not all_commits
    )
    out.echo_lines(log_lines(the_job, folded, oneline=oneline, graph=graph))


@click.command("show", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.argument("rev", required=False, shell_complete=complete_revisions)
@json_option
def show(job: str, rev: str | None, as_json: bool) -> None:
    """Show one checkpoint of JOB and the stages it holds.

    REV defaults to HEAD.  Shows the stages with their sizes, the cost and
    tokens, status, message, the job's labels and the metadata a pipeline
    recorded; ckpt's own bookkeeping (the runner's, LangGraph's) is told in
    words, and is whole in --json.

    Stages marked + were added and ~ changed by this checkpoint.  The files
    a stage holds (ckpt.File, ckpt.Directory) are listed with their sizes.
    A commit id (prefix) alone, `ckpt show 3fa9c2`, is looked up in every job.
    """
    from ckpt.history.diff import stage_files
    from ckpt.history.documents import decorations, show_document, stage_changes

    the_job, rev = job_or_commit(job, rev)
    page()
    if as_json:
        out.emit_json(show_document(the_job, rev))
        return
    commit = the_job.resolve(rev)
    tree = the_job.repo.objects.get_tree(commit.tree)
    changes = stage_changes(the_job, commit)
    refs = decorations(the_job).get(commit.id, [])
    files = {entry.name: stage_files(the_job, entry) for entry in tree if entry.files}
    lines = [f"{out.style('commit ' + commit.id, fg='yellow')} {_decoration_text(refs)}".rstrip()]
    lines.extend(_show_fields(the_job, commit))
    lines.append("")
    lines.append(f"Stages ({len(tree)}):")
    marks = {"added": "+", "changed": "~"}
    rows = [
        [marks.get(changes.get(e.name, ""), " "), e.name, e.type, out.size(e.size)] for e in tree
    ]
    lines.extend(
        "  " + line for line in out.table(["", "STAGE", "TYPE", "SIZE"], rows, align_right=[3])
    )
    for name, listed in files.items():
        if not listed:
            continue
        total = sum(f.size for f in listed)
        lines.append("")
        lines.append(f"Files of {name} ({len(listed)}, {out.size(total)}):")
        table = out.table(
            ["FILE", "SIZE"], [[f.path, out.size(f.size)] for f in listed], align_right=[1]
        )
        lines.extend("  " + line for line in table)
    out.echo_lines(lines)


def _tag_fields(job: Job, commit: Commit) -> list[tuple[str, str]]:
    """``Tag: NAME: MESSAGE`` for each annotated tag at ``commit`` (more lines indented)."""
    from ckpt.history.documents import tags_at

    fields = []
    for found in tags_at(job, commit):
        if found["message"] is not None:
            text = str(found["message"]).replace("\n", "\n" + " " * 10)
            fields.append(("Tag", f"{found['name']}: {text}"))
    return fields


#: ``ckpt show`` cuts a metadata value longer than this (``--json`` has it whole).
META_WIDTH = 72


def _show_fields(job: Job, commit: Commit) -> list[str]:
    """The ``Name: value`` lines of ``ckpt show``: what a person needs to know about a
    checkpoint; the runner's and LangGraph's bookkeeping in words, the rest for ``--json``."""
    from ckpt.cli.describe import label, langgraph_nodes, meta_fields, user_meta
    from ckpt.errors import CkptError
    from ckpt.objects.canonical import printable_json

    def read(oid: str) -> Commit | None:
        try:
            return job.repo.objects.get_commit(oid)  # type: ignore[arg-type]
        except CkptError:
            return None

    fields = [
        ("Job", job.name),
        ("Branch", commit.branch),
        ("Parents", ", ".join(p[:12] for p in commit.parents) or "none (first checkpoint)"),
        ("Date", f"{out.timestamp(commit.time)} ({out.relative_time(commit.time)})"),
        ("Stage", label(commit, langgraph_nodes(commit, read))),
        ("Cost", f"{out.money(commit.cost)}, {out.count(commit.tokens)} tokens (this stage)"),
        ("Total", f"{out.money(commit.total_cost)}, {out.count(commit.total_tokens)} tokens"),
        ("Status", out.status_text(commit.status)),
    ]
    if commit.message:
        fields.append(("Message", commit.message))
    fields.extend(_tag_fields(job, commit))
    fields.extend(meta_fields(commit))
    labels = job.labels
    if labels:
        fields.append(("Labels", ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))))
    cut = False
    for key, value in sorted(user_meta(commit).items()):
        text = f"{key}: {printable_json(value, indent=None)}"
        if len(text) > META_WIDTH:
            text, cut = text[: META_WIDTH - 1] + "…", True
        fields.append(("Metadata" if not any(f == "Metadata" for f, _ in fields) else "", text))
    width = max(9, *(len(name) + 1 for name, _ in fields))
    lines = [f"{(name + ':') if name else '':<{width}} {value}" for name, value in fields]
    if job.is_cut(commit):
        lines.append(CUT_NOTE)
    if cut:
        lines.append(out.style("(cut values are whole in `ckpt show --json`)", fg="bright_black"))
    return lines


def _split_cat_args(args: Sequence[str]) -> tuple[str | None, str]:
    if len(args) == 1:
        return None, args[0]
    if len(args) == 2:
        return args[0], args[1]
    raise click.UsageError("expected [REV] STAGE after JOB")


def _not_a_revision(job: Job, word: str) -> None:
    """Refuse ``ckpt cat JOB REV`` with its STAGE forgotten: ``word`` is no stage at HEAD but
    names a checkpoint."""
    from ckpt.errors import CkptError

    stages = job.stages()
    if word in stages:
        return
    try:
        commit = job.resolve(word)
    except CkptError:
        return  # neither: the stage is reported missing
    names = ", ".join(job.stages(commit.id)) or "none"
    raise UserError(
        f"{word} is a checkpoint ({commit.short_id}), not a stage: give the stage after it, "
        f"as in `{command_line('cat', job.name, word, 'STAGE')}` (its stages: {names})"
    )


@click.command("cat", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.argument(
    "args", nargs=-1, required=True, metavar="[REV] STAGE", shell_complete=complete_revisions
)
@click.option("--raw", is_flag=True, help="Write the stored canonical bytes, unformatted.")
@click.option(
    "--to",
    "to",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Write the stage's files (ckpt.File, ckpt.Directory) into DIR instead.",
)
@click.option(
    "--text/--no-text",
    default=None,
    help="Print a string value as the text itself (default on a terminal), or as JSON.",
)
def cat(job: str, args: tuple[str, ...], raw: bool, to: str | None, text: bool | None) -> None:
    """Print the value of STAGE at REV (default HEAD) as pretty JSON.

    A string value (a chapter, a prompt) prints as text on a terminal, line
    by line; piped, it stays a JSON string unless --text is given.

    With --to DIR, write the files the value holds into DIR instead: a file
    as DIR/NAME, a directory as DIR/NAME/..., byte-identical, modes restored.

    A commit id (prefix) in place of JOB, `ckpt cat 3fa9c2 outline`, is
    looked up in every job.
    """
    from ckpt.errors import FileValueError, NotFoundError
    from ckpt.history.diff import value_text
    from ckpt.history.names import stage_name

    rev, stage = _split_cat_args(args)
    the_job, rev = job_or_commit(job, rev)
    if rev is None:
        _not_a_revision(the_job, stage)
    stage_name(stage)
    commit = the_job.resolve(rev)
    entry = the_job.repo.objects.get_tree(commit.tree).get(stage)
    if entry is None:
        stages = ", ".join(the_job.stages(commit.id)) or "none"
        raise NotFoundError(
            f"job {the_job.name!r} has no stage {stage!r} at {commit.short_id} (stages: {stages})"
        )
    if raw and to is not None:
        raise UserError("give either --raw or --to, not both")
    if to is not None:
        from ckpt.values.filelisting import write_out

        value = the_job.load(stage, at=commit.id)
        try:
            written = write_out(value, to)
        except FileValueError as exc:
            raise FileValueError(f"stage {stage!r} at {commit.short_id}: {exc}") from exc
        for path in written:
            out.echo(f"wrote {path}")
        return
    if raw:
        if text:
            raise UserError("give either --raw or --text, not both")
        click.echo(the_job.load_raw(stage, at=commit.id), nl=False)
        return
    if entry.encoding != "raw":
        page()
    terminal = out.is_terminal()
    if (text or (text is None and terminal)) and entry.encoding != "raw":
        value = the_job.load(stage, at=commit.id)
        if isinstance(value, str):
            # A terminal gets a last newline, so that the prompt starts on a line of its own.
            ending = "\n" if terminal and not value.endswith("\n") else ""
            click.echo(value + ending, nl=False)
            return
        if text:
            raise UserError(
                f"stage {stage!r} holds {_json_kind(value)}, not a string: --text prints "
                "string values only (leave it out to print JSON)"
            )
    if entry.encoding == "raw":
        raise UserError(
            f"stage {stage!r} holds {out.count(entry.size)} bytes of binary data; add --raw "
            f"to write them ({command_line('cat', the_job.name, commit.short_id, stage, '--raw')} "
            "> FILE)"
        )
    click.echo(value_text(the_job, entry), nl=False)


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _split_diff_args(job: Job, args: Sequence[str]) -> tuple[str, str | None, str | None]:
    if len(args) == 1:
        return args[0], None, None
    if len(args) == 3:
        return args[0], args[1], args[2]
    if len(args) == 2:
        # REV1 WORD: WORD is a STAGE if one has that name, unless a branch or tag does (as
        # in every revision, refs win over stages; resolving it then warns).
        first, second = args
        named = set(job.tree(first).names) | set(job.stages())
        if second in named and not _names_a_ref(job, second):
            return first, None, second
        return first, second, None
    raise click.UsageError("expected REV1 [REV2] [STAGE] after JOB")


def _split_two_jobs(
    first: str, args: Sequence[str]
) -> tuple[Job, str, Job, str | None, str | None]:
    """``JOB1:REV1 JOB2:REV2 [STAGE]``: the two jobs, their revisions and the stage."""
    if not args or ":" not in args[0] or len(args) > 2:
        raise UserError("compare two jobs as JOB1:REV1 JOB2:REV2 [STAGE] (REV empty: HEAD)")
    old_name, _, old_rev = first.partition(":")
    new_name, _, new_rev = args[0].partition(":")
    return (
        get_job(old_name),
        old_rev or "HEAD",
        get_job(new_name),
        new_rev or None,
        args[1] if len(args) == 2 else None,
    )


def _names_a_ref(job: Job, word: str) -> bool:
    from ckpt.errors import InvalidNameError
    from ckpt.history.names import branch_name

    try:
        branch_name(word)
    except InvalidNameError:
        return False
    return word in job.branches() or word in job.tags()


def _diff_line(line: str) -> str:
    if line.startswith(("+++", "---")):
        return out.style(line, bold=True)
    if line.startswith("@@"):
        return out.style(line, fg="cyan")
    if line.startswith("+"):
        return out.style(line, fg="green")
    if line.startswith("-"):
        return out.style(line, fg="red")
    return line


@click.command("diff", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.argument(
    "args",
    nargs=-1,
    required=True,
    metavar="REV1 [REV2] [STAGE]",
    shell_complete=complete_revisions,
)
@click.option("--stat", "stat_only", is_flag=True, help="List changed stages only, no value diffs.")
@click.option(
    "-U",
    "--unified",
    "context",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Lines of context around each change.",
)
@click.option(
    "--no-text",
    "as_json_values",
    is_flag=True,
    help="Diff string values as JSON strings, not as text line by line.",
)
@json_option
def diff(
    job: str,
    args: tuple[str, ...],
    stat_only: bool,
    context: int,
    as_json_values: bool,
    as_json: bool,
) -> None:
    """Show what changed between two checkpoints of JOB.

    Lists the stages added, changed and removed from REV1 to REV2 (default
    HEAD), and a diff of each changed value's JSON.

    With two words given, the second is taken as a STAGE when REV1 or HEAD
    has a stage of that name and no branch or tag has it (a branch or tag
    wins, with a warning, as everywhere a REV is read); give all three to
    compare one stage between two revisions.  Two jobs are compared with
    `ckpt diff JOB1:REV1 JOB2:REV2 [STAGE]` (an empty REV is HEAD: `novel:
    sequel:`).

    A string value (a chapter, a prompt) is diffed as text, line by line.
    """
    from ckpt.history.documents import diff_document

    new_job: Job | None = None
    if ":" in job:
        the_job, rev1, new_job, rev2, stage = _split_two_jobs(job, args)
    else:
        the_job = get_job(job)
        rev1, rev2, stage = _split_diff_args(the_job, args)
    doc = diff_document(
        the_job,
        rev1,
        rev2,
        stage,
        stat_only=stat_only,
        context=context,
        new_job=new_job,
        text=not as_json_values,
    )
    page()
    if as_json:
        out.emit_json(doc)
        return
    changes = doc["changes"]
    old_id, new_id = doc["old"][:12], doc["new"][:12]
    if new_job is not None:
        old_id, new_id = f"{the_job.name}:{old_id}", f"{new_job.name}:{new_id}"
    if not changes:
        subject = f"stage {stage!r}" if stage is not None else "no stage"
        verb = "is the same" if stage is not None else "differs"
        out.echo(f"{subject} {verb} between {old_id} and {new_id}")
        return
    title = f"{old_id} {new_id}" if new_job is not None else f"{the_job.name} {old_id}..{new_id}"
    out.echo(out.style(f"diff {title}", bold=True))
    marks = {"added": "A", "changed": "M", "removed": "D"}
    rows = []
    for c in changes:
        entry = c["new"] or c["old"]
        if c["old"] is not None and c["new"] is not None:
            sizes = f"{out.size(c['old']['size'])} -> {out.size(c['new']['size'])}"
        else:
            sizes = out.size(None if entry is None else entry["size"])
        rows.append([marks[c["change"]], c["stage"], "" if entry is None else entry["type"], sizes])
    out.echo_lines(out.table(["", "STAGE", "TYPE", "SIZE"], rows))
    for c in changes:
        if c["files"]:
            out.echo()
            out.echo(f"Files of {c['stage']}:")
            out.echo_lines(["  " + line for line in _file_change_rows(c["files"], marks)])
    for c in changes:
        if c["diff"]:
            out.echo()
            out.echo_lines([_diff_line(line) for line in c["diff"]])


def _file_change_rows(changes: Sequence[dict[str, Any]], marks: dict[str, str]) -> list[str]:
    """Rows of the files a stage's change touched (``FileChange.to_json`` documents)."""
    rows = []
    for change in changes:
        old, new = change["old"], change["new"]
        if old is not None and new is not None:
            sizes = f"{out.size(old['size'])} -> {out.size(new['size'])}"
        else:
            either = new or old
            sizes = out.size(None if either is None else either["size"])
        rows.append([marks[change["change"]], change["path"], sizes])
    return out.table(["", "FILE", "SIZE"], rows)


@click.command("reflog", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.option(
    "-n", "--max-count", "limit", type=click.IntRange(min=1), help="Show at most N moves."
)
@json_option
def reflog(job: str, limit: int | None, as_json: bool) -> None:
    """Show every move of JOB's branches and tags, newest first.

    A rolled-back checkpoint stays reachable from here (for 30 days, or
    until retention prunes the job): `ckpt checkout JOB ID` brings it back.
    """
    the_job = get_job(job)
    entries = the_job.reflog()
    if limit is not None:
        entries = entries[:limit]
    page()
    if as_json:
        out.emit_json({"job": the_job.name, "entries": [e.to_json() for e in entries]})
        return
    rows = [
        [
            out.relative_time(e.time),
            _pretty_ref(e.ref),
            out.short(e.old),
            out.short(e.new),
            e.reason,
        ]
        for e in entries
    ]
    out.echo_lines(out.table(["WHEN", "REF", "FROM", "TO", "REASON"], rows, shrink=4))


def _pretty_ref(ref: str) -> str:
    for prefix, label in (("refs/heads/", ""), ("refs/tags/", "tag: ")):
        if ref.startswith(prefix):
            return label + ref[len(prefix) :]
    return ref
