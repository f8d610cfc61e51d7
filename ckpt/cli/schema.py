"""The documented ``--json`` output of every read command.

Each schema maps a field path to (type, meaning).  ``a.b`` is field ``b`` of
object ``a``; ``a[].b`` is field ``b`` of every object in list ``a``; a
field typed ``map`` (or ``object``) without documented children is free
form (metadata, labels) and not described further.  ``docs/cli.md`` is
generated from these tables and a test checks real output against them, so
a field cannot appear, vanish or be renamed without the documentation
changing too.

Compatibility promise: within a major version of ckpt, fields are only
added, never removed, renamed or given another type.
"""

from __future__ import annotations

Field = tuple[str, str]
Schema = dict[str, Field]

_COMMIT: Schema = {
    "id": ("string", "commit id (64 hex digits)"),
    "tree": ("string", "id of the tree listing the stages"),
    "parents": ("list of strings", "parent commit ids (empty for a first checkpoint)"),
    "job": ("string", "job name"),
    "branch": ("string", "branch the checkpoint was saved on"),
    "stage": ("string or null", "stage saved (null for a status commit)"),
    "time": ("string", "ISO 8601 time with zone"),
    "seq": ("integer", "position in the branch's history (first is 1)"),
    "cost": ("number", "cost of this stage"),
    "tokens": ("integer", "tokens of this stage"),
    "total_cost": ("number", "cost of the branch up to here"),
    "total_tokens": ("integer", "tokens of the branch up to here"),
    "status": ("string", "active, completed, failed or expired"),
    "message": ("string", "free text"),
    "meta": ("object", "free metadata the pipeline recorded"),
    "refs": ("list of strings", "branches and tags here: `HEAD -> main`, `alt`, `tag: v1`"),
    "cut": ("boolean", "true if retention removed the history before this checkpoint"),
}

_ENTRY: Schema = {
    "id": ("string", "blob id"),
    "type": ("string", "type name of the value"),
    "size": ("integer", "canonical size in bytes"),
    "encoding": ("string", "`json`, or `raw` for a bytes value"),
}


def _nested(prefix: str, fields: Schema) -> Schema:
    return {f"{prefix}.{name}": field for name, field in fields.items()}


_FILE: Schema = {
    "path": ("string", "where `cat --to DIR` writes it: NAME, or NAME/PATH in a directory"),
    "size": ("integer", "bytes"),
    "mode": ("integer", "permission bits"),
    "id": ("string", "content id (the blob holding the bytes)"),
}

_TRANSFER: Schema = {
    "remote": ("string", "the other store (a password in its URL shown as ***)"),
    "objects_copied": ("integer", "objects copied (the receiving side lacked them)"),
    "bytes_copied": ("integer", "their canonical (uncompressed) bytes"),
    "updates": ("list of objects", "one per branch and tag of the jobs transferred"),
    **_nested(
        "updates[]",
        {
            "job": ("string", "job name"),
            "ref": ("string", "`refs/heads/BRANCH` or `refs/tags/TAG`"),
            "old": ("string or null", "commit the receiving side had (null: none)"),
            "new": ("string", "commit of the sending side"),
            "status": (
                "string",
                "created, fast-forward, forced, up-to-date, rejected (the other side is "
                "ahead, or a tag differs), diverged (each side has checkpoints the other "
                "lacks) or conflict",
            ),
            "reason": ("string", "why a ref was refused (else empty)"),
        },
    ),
    "created_store": (
        "boolean",
        "true if the receiving store was created (a push to a new location, a clone)",
    ),
}

_LANGGRAPH_COPY: Schema = {
    "threads": ("integer", "threads gone through"),
    "checkpoints": ("integer", "checkpoints copied"),
    "skipped": ("integer", "checkpoints the destination had already (their missing writes added)"),
    "writes": ("integer", "pending writes copied"),
}

SCHEMAS: dict[str, Schema] = {
    "jobs": {
        "jobs": ("list of objects", "one per job, sorted by name"),
        **_nested(
            "jobs[]",
            {
                "name": ("string", "job name"),
                "status": (
                    "string",
                    "active, completed, failed, expired, or damaged (the job cannot be read)",
                ),
                "branch": ("string", "current branch (empty for a damaged job)"),
                "stages": ("list of strings", "stages done, in order"),
                "total_stages": ("integer or null", "stages of the pipeline, when known"),
                "cost": ("number", "total cost at HEAD"),
                "tokens": ("integer", "total tokens at HEAD"),
                "seq": ("integer", "sequence number of HEAD (0: no checkpoint)"),
                "updated": ("string or null", "time of HEAD"),
                "labels": ("map", "the job's key=value labels"),
                "expires_at": ("string or null", "when its TTL passes"),
                "forked_from": ("object or null", "the checkpoint it was forked from"),
                "forked_from.job": ("string", "source job"),
                "forked_from.commit": ("string", "source commit id"),
                "size": (
                    "integer or null",
                    "stored bytes of every object the job reaches (null without --sizes)",
                ),
                "eta_seconds": (
                    "number or null",
                    "time left for the stage runner's run, when it can be estimated",
                ),
                "damage": ("string or null", "why a damaged job cannot be read (else null)"),
            },
        ),
    },
    "log": {
        "job": ("string", "job name"),
        "commits": ("list of objects", "checkpoints, newest first"),
        **_nested("commits[]", _COMMIT),
    },
    "show": {
        "job": ("string", "job name"),
        "commit": ("object", "the checkpoint"),
        **_nested("commit", _COMMIT),
        "tags": ("list of objects", "the tags pointing at the checkpoint"),
        **_nested(
            "tags[]",
            {
                "name": ("string", "tag name"),
                "message": ("string or null", "its message (`ckpt tag -m`), null if none"),
                "time": ("string or null", "when the message was written"),
            },
        ),
        "stages": ("list of objects", "its stages in the order first saved"),
        **_nested(
            "stages[]",
            {
                "name": ("string", "stage name"),
                **_ENTRY,
                "change": ("string or null", "`added` or `changed` by this checkpoint, else null"),
                "files": ("list of objects", "the files the value holds (ckpt.File, Directory)"),
                **_nested("files[]", _FILE),
            },
        ),
    },
    "diff": {
        "job": ("string", "job name (of REV1)"),
        "new_job": ("string", "job of REV2: JOB, or JOB2 of `JOB1:REV1 JOB2:REV2`"),
        "old": ("string", "commit id of REV1"),
        "new": ("string", "commit id of REV2"),
        "changes": ("list of objects", "stages that differ"),
        **_nested(
            "changes[]",
            {
                "stage": ("string", "stage name"),
                "change": ("string", "added, changed or removed"),
                "old": ("object or null", "the stage at REV1"),
                **_nested("old", _ENTRY),
                "new": ("object or null", "the stage at REV2"),
                **_nested("new", _ENTRY),
                "files": ("list of objects", "files of the value added, changed or removed"),
                "files[].path": ("string", "the file's path (as `cat --to` writes it)"),
                "files[].change": ("string", "added, changed (content or mode) or removed"),
                "files[].old": ("object or null", "the file at REV1"),
                **_nested("files[].old", _FILE),
                "files[].new": ("object or null", "the file at REV2"),
                **_nested("files[].new", _FILE),
                "diff": ("list of strings", "unified diff lines of the JSON (empty with --stat)"),
            },
        ),
    },
    "reflog": {
        "job": ("string", "job name"),
        "entries": ("list of objects", "ref moves, newest first"),
        **_nested(
            "entries[]",
            {
                "ref": ("string", "`refs/heads/BRANCH` or `refs/tags/TAG`"),
                "old": ("string or null", "commit before the move (null: created)"),
                "new": ("string or null", "commit after the move (null: deleted)"),
                "time": ("string", "ISO 8601 time"),
                "reason": ("string", "what moved it (save, checkout, fail, ...)"),
            },
        ),
    },
    "status": {
        "job": ("string", "job name"),
        "status": ("string", "active, completed, failed or expired"),
        "branch": ("string", "current branch"),
        "stages_done": ("list of strings", "stages done, in order"),
        "total_stages": ("integer or null", "stages of the pipeline, when known"),
        "fraction": ("number or null", "share done (0..1), when the total is known"),
        "resume_after": ("string or null", "the next run starts after this stage"),
        "failed_stage": ("string or null", "stage that failed"),
        "error": ("string or null", "the failure's message"),
        "interrupted": ("boolean", "true if the failure was an interruption (Ctrl-C)"),
        "stale": ("map", "stale stage -> why (recorded by a run, or an input changed since)"),
        "running": ("list of strings", "stages in flight (of an active run)"),
        "eta_seconds": ("number or null", "estimated seconds left of an active run"),
        "runner": ("object or null", "the process holding the job's lease"),
        "runner.host": ("string", "its host name"),
        "runner.pid": ("integer", "its process id"),
        "runner.since": ("string", "when it took the lease"),
        "runner.renewed": ("string", "when it last renewed the lease"),
        "runner.expires": ("string", "when the lease lapses unless renewed"),
        "runner.alive": ("boolean", "false once the lease lapsed or the process is gone"),
        "head": ("string or null", "commit id of HEAD"),
        "seq": ("integer or null", "sequence number of HEAD"),
        "total_cost": ("number", "cost at HEAD"),
        "total_tokens": ("integer", "tokens at HEAD"),
        "updated": ("string or null", "time of HEAD"),
    },
    "branch": {
        "job": ("string", "job name"),
        "current": ("string", "the current branch"),
        "refs": ("list of objects", "branches, by name"),
        **_nested(
            "refs[]",
            {
                "name": ("string", "branch name"),
                "commit": ("string", "commit id it points at"),
                "stage": ("string or null", "stage of that commit"),
                "status": ("string", "status of that commit"),
                "time": ("string", "time of that commit"),
                "current": ("boolean", "true for the current branch"),
            },
        ),
    },
    "tag": {
        "job": ("string", "job name"),
        "current": ("null", "always null for tags"),
        "refs": ("list of objects", "tags, by name"),
        **_nested(
            "refs[]",
            {
                "name": ("string", "tag name"),
                "commit": ("string", "commit id it points at"),
                "stage": ("string or null", "stage of that commit"),
                "status": ("string", "status of that commit"),
                "time": ("string", "time of that commit"),
                "current": ("boolean", "always false"),
                "message": ("string or null", "the message of an annotated tag (`-m`)"),
            },
        ),
    },
    "verify": {
        "ok": ("boolean", "true when nothing is wrong"),
        "full": ("boolean", "whether every object was hashed"),
        "objects_checked": ("integer", "objects checked"),
        "bytes_checked": ("integer", "stored bytes read"),
        "problems": ("list of objects", "everything found wrong"),
        **_nested(
            "problems[]",
            {
                "kind": (
                    "string",
                    "corrupt-object, missing-object, damaged-pack, bad-ref, missing-ref, "
                    "bad-head, missing-head, bad-reflog or bad-record",
                ),
                "subject": ("string", "object id, pack key (`packs/...`), or `JOB:REF`"),
                "message": ("string", "what is wrong, expected vs found"),
                "jobs": ("list of strings", "jobs it breaks"),
                "commits": ("list of strings", "checkpoints it breaks"),
                "objects": (
                    "list of strings",
                    "for a damaged pack: the missing objects it held (else empty)",
                ),
            },
        ),
        "jobs": ("map", "job name -> its health (below)"),
        "jobs.*.job": ("string", "job name"),
        "jobs.*.broken_commits": ("list of strings", "its broken checkpoints"),
        "jobs.*.last_good": ("map", "branch -> newest intact commit id (null: none)"),
    },
    "gc": {
        "retention": ("object", "what retention did (or would do)"),
        "retention.dry_run": ("boolean", "nothing was changed"),
        "retention.deleted_jobs": ("list of strings", "jobs deleted"),
        "retention.pruned": ("list of objects", "histories cut by keep-last"),
        "retention.pruned[].job": ("string", "job name"),
        "retention.pruned[].cut_at": ("list of strings", "commits where history now stops"),
        "retention.pruned[].dropped_commits": ("integer", "commits let go"),
        "gc": ("object", "what the sweep did (or would do)"),
        "gc.dry_run": ("boolean", "nothing was deleted"),
        "gc.reachable_objects": ("integer", "objects kept because reachable"),
        "gc.deleted_objects": ("integer", "objects deleted (or that would be)"),
        "gc.deleted_bytes": ("integer", "stored bytes freed (or that would be)"),
        "gc.kept_by_grace": ("integer", "unreachable objects kept as younger than --grace"),
        "kept_by_reflog": (
            "map",
            "job -> checkpoints only reflog entries younger than --reflog-expiry keep",
        ),
    },
    "stats": {
        "objects": ("integer", "objects stored"),
        "objects_by_kind": ("map", "blob/tree/commit -> count"),
        "stored_bytes": ("integer", "bytes on the backend: every pack and loose object"),
        "object_bytes": ("integer", "the stored form of each object, counted once"),
        "packs": ("integer", "pack files"),
        "unique_bytes": ("integer", "canonical bytes of the stored objects"),
        "logical_bytes": ("integer", "bytes of every checkpoint kept in full"),
        "dedup_ratio": ("number or null", "logical / unique"),
        "compression_ratio": ("number or null", "unique / object bytes"),
        "unreachable_objects": ("integer", "objects gc may remove"),
        "unreachable_bytes": ("integer", "their stored bytes"),
        "unreadable_objects": ("integer", "objects that could not be read"),
        "jobs": ("list of objects", "per job"),
        **_nested(
            "jobs[]",
            {
                "job": ("string", "job name"),
                "commits": ("integer", "checkpoints it reaches"),
                "objects": ("integer", "objects it reaches"),
                "logical_bytes": ("integer", "its checkpoints kept in full"),
                "stored_bytes": ("integer", "stored bytes it reaches"),
                "exclusive_bytes": ("integer", "stored bytes only it reaches"),
            },
        ),
    },
    "remote": {
        "remotes": ("list of objects", "one per remote, sorted by name"),
        **_nested(
            "remotes[]",
            {
                "name": ("string", "the remote's name"),
                "url": ("string", "the store it names (a password in it shown as ***)"),
            },
        ),
    },
    "push": _TRANSFER,
    "pull": _TRANSFER,
    "clone": {
        "remote": _TRANSFER["remote"],
        "path": ("string", "where the new store was created"),
        **_TRANSFER,
    },
    "langgraph import": {
        "file": ("string", "the SqliteSaver database read"),
        "store": ("string", "the store written"),
        **_LANGGRAPH_COPY,
        "file_bytes": ("integer", "size of the database file, with its write-ahead log"),
        "store_bytes_before": ("integer", "stored bytes of the store's objects before"),
        "store_bytes_after": ("integer", "and after the import"),
    },
    "langgraph export": {
        "file": ("string", "the SqliteSaver database written"),
        **_LANGGRAPH_COPY,
    },
}


def field_paths(doc: object, schema: Schema, prefix: str = "") -> set[str]:
    """The schema paths of every field in ``doc`` (for checking output against a schema).

    Descends into objects and lists of objects; a ``map`` field is entered
    only where the schema documents ``name.*`` children.
    """
    found: set[str] = set()
    if isinstance(doc, list):
        for item in doc:
            found |= field_paths(item, schema, prefix + "[]")
        return found
    if not isinstance(doc, dict):
        return found
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else key
        found.add(path)
        kind = schema.get(path, ("", ""))[0]
        if kind == "map":
            if any(p.startswith(path + ".*.") for p in schema) and isinstance(value, dict):
                for inner in value.values():
                    found |= field_paths(inner, schema, path + ".*")
            continue
        if any(p.startswith(path + ".") or p.startswith(path + "[].") for p in schema):
            found |= field_paths(value, schema, path)
    return found
