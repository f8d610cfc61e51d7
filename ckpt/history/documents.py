"""The JSON documents of the history reads: ``log``, ``show`` and ``diff``.

``ckpt log/show/diff --json`` print these documents and ``ckpt ui`` serves
them, so that scripts and the dashboard read one schema (documented in
``docs/cli.md``).  Each function reads only what its document holds and
raises the library's errors (a job, revision or stage that does not exist,
a damaged object) unchanged.  The diff machinery (:mod:`ckpt.history.diff`) is
imported by the functions that use it, not by ``ckpt log``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ckpt.errors import NotFoundError
from ckpt.history.job import Job
from ckpt.history.names import stage_name
from ckpt.history.retained import retained_history
from ckpt.objects.model import Commit


def decorations(job: Job) -> dict[str, list[str]]:
    """Commit id -> ref labels, git style: ``HEAD -> main``, ``other``, ``tag: v1``."""
    labels: dict[str, list[str]] = {}
    current = job.branch_name
    for name, oid in sorted(job.branches().items(), key=lambda item: item[0] != current):
        labels.setdefault(oid, []).append(f"HEAD -> {name}" if name == current else name)
    for name, oid in sorted(job.tags().items()):
        labels.setdefault(oid, []).append(f"tag: {name}")
    return labels


def topological(commits: Sequence[Commit]) -> list[Commit]:
    """``commits`` newest first, every child before its parents (even with skewed clocks)."""
    by_id = {c.id: c for c in commits}
    waiting = {c.id: 0 for c in commits}
    for commit in commits:
        for parent in commit.parents:
            if parent in waiting:
                waiting[parent] += 1
    newest_first = sorted(commits, key=lambda c: (c.time, c.seq, c.id), reverse=True)
    out: list[Commit] = []
    emitted: set[str] = set()
    while len(out) < len(commits):
        for commit in newest_first:
            if commit.id not in emitted and waiting[commit.id] == 0:
                break
        else:  # a cycle cannot happen with hashed parents; keep going regardless
            commit = next(c for c in newest_first if c.id not in emitted)
        out.append(commit)
        emitted.add(commit.id)
        for parent in commit.parents:
            if parent in by_id:
                waiting[parent] -= 1
    return out


def log_commits(
    job: Job,
    rev: str | None = None,
    *,
    all_refs: bool = False,
    limit: int | None = None,
    stages: Sequence[str] = (),
) -> list[Commit]:
    """The commits ``ckpt log`` shows, newest first (children before parents): the first-parent
    history of ``rev`` (default HEAD), or with ``all_refs`` that of every branch and tag.
    With ``stages``, only the commits that added, changed or removed one of them
    (``ckpt log JOB -- STAGE``); ``limit`` then counts those.  Raises NotFoundError
    if no commit of the history ever had one of them."""
    if stages:
        from ckpt.history.diff import changes_stage

        for stage in stages:
            stage_name(stage)
        every = log_commits(job, rev, all_refs=all_refs)
        chosen = [c for c in every if changes_stage(job, c, stages)]
        if every and not chosen:  # no commit ever had one: a typo, most likely
            known = job.stages(every[0].id)
            raise NotFoundError(
                f"job {job.name!r} has no stage {', '.join(map(repr, stages))} in this history "
                f"(stages: {', '.join(known) or 'none'})"
            )
        return chosen if limit is None else chosen[:limit]
    if not all_refs:
        return job.log(rev, limit=limit)
    seen: dict[str, Commit] = {}
    heads = [*job.branches().values(), *job.tags().values()]
    for head in heads:
        for commit in retained_history(job, head):
            if commit.id in seen:
                break
            seen[commit.id] = commit
    ordered = topological(list(seen.values()))
    return ordered if limit is None else ordered[:limit]


def commit_json(commit: Commit, refs: Sequence[str], cut: bool) -> dict[str, Any]:
    """A commit as the documents show it: its fields, the refs pointing at it, and whether
    retention cut the history before it."""
    return {**commit.to_json(), "refs": list(refs), "cut": cut}


def log_document(
    job: Job,
    rev: str | None = None,
    *,
    all_refs: bool = False,
    limit: int | None = None,
    stages: Sequence[str] = (),
) -> dict[str, Any]:
    """``ckpt log JOB [REV] [--all] [-n LIMIT] [-- STAGE...] --json``."""
    commits = log_commits(job, rev, all_refs=all_refs, limit=limit, stages=stages)
    refs = decorations(job)
    cut = job.record.cut
    return {
        "job": job.name,
        "commits": [
            commit_json(c, refs.get(c.id, []), c.id in cut and c.parent is not None)
            for c in commits
        ],
    }


def stage_changes(job: Job, commit: Commit) -> dict[str, str]:
    """Stage name -> ``added`` or ``changed`` for the stages ``commit`` wrote (compared with
    its parent; every stage of a first checkpoint is added, none after a retention cut)."""
    from ckpt.history.diff import diff_trees

    objects = job.repo.objects
    tree = objects.get_tree(commit.tree)
    if commit.parent is None:
        return {entry.name: "added" for entry in tree}
    if job.is_cut(commit):
        return {}
    parent = objects.get_commit(commit.parent)
    return {c.stage: c.change for c in diff_trees(objects.get_tree(parent.tree), tree)}


def tags_at(job: Job, commit: Commit) -> list[dict[str, Any]]:
    """The tags pointing at ``commit``, each with its message (None for a tag without)."""
    from ckpt.history.tags import tag_annotations

    notes = tag_annotations(job)
    found = []
    for name, oid in sorted(job.tags().items()):
        if oid == commit.id:
            note = notes.get(name)
            found.append(
                {
                    "name": name,
                    "message": None if note is None else note.message,
                    "time": None if note is None else note.time.isoformat(),
                }
            )
    return found


def show_document(job: Job, rev: str | None = None) -> dict[str, Any]:
    """``ckpt show JOB [REV] --json``."""
    from ckpt.history.diff import stage_files

    commit = job.resolve(rev)
    tree = job.repo.objects.get_tree(commit.tree)
    changes = stage_changes(job, commit)
    refs = decorations(job).get(commit.id, [])
    return {
        "job": job.name,
        "commit": commit_json(commit, refs, job.is_cut(commit)),
        "tags": tags_at(job, commit),
        "stages": [
            {
                "name": entry.name,
                "id": entry.id,
                "type": entry.type,
                "size": entry.size,
                "encoding": entry.encoding,
                "change": changes.get(entry.name),
                "files": [
                    {"path": f.path, "size": f.size, "mode": f.mode, "id": f.id}
                    for f in stage_files(job, entry)
                ],
            }
            for entry in tree
        ],
    }


def diff_document(
    job: Job,
    old_rev: str,
    new_rev: str | None = None,
    stage: str | None = None,
    *,
    stat_only: bool = False,
    context: int = 3,
    new_job: Job | None = None,
    text: bool = True,
) -> dict[str, Any]:
    """``ckpt diff JOB OLD [NEW] [STAGE] [--stat] [-U CONTEXT] --json``: the stages that differ
    from ``old_rev`` to ``new_rev`` (default HEAD), only ``stage`` if given, each with a
    unified diff of its JSON (none with ``stat_only``; a string value as text, line by line,
    unless ``text`` is False).  With ``new_job``, ``new_rev`` is a revision of that job
    (``ckpt diff JOB1:OLD JOB2:NEW``)."""
    from ckpt.history.diff import diff_commits, file_diff, value_diff

    result = diff_commits(job, old_rev, new_rev, new_job=new_job)
    changes = result.changes
    if stage is not None:
        stage_name(stage)
        objects = job.repo.objects
        if stage not in objects.get_tree(result.old.tree) and stage not in objects.get_tree(
            result.new.tree
        ):
            where = "" if new_job is None else f" or job {new_job.name!r}"
            raise NotFoundError(
                f"job {job.name!r}{where} has no stage {stage!r} at {result.old.short_id} "
                f"or {result.new.short_id}"
            )
        changes = tuple(c for c in changes if c.stage == stage)
    return {
        "job": job.name,
        "new_job": (new_job or job).name,
        "old": result.old.id,
        "new": result.new.id,
        "changes": [
            {
                **c.to_json(),
                "files": [f.to_json() for f in file_diff(job, c)],
                "diff": [] if stat_only else value_diff(job, c, context=context, text=text),
            }
            for c in changes
        ],
    }
