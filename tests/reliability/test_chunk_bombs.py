"""Guarantee 14: a chunked value that declares more than it may, or than memory holds, is refused.

A chunked blob's chunk list may name one chunk many times: a few hundred
bytes on disk declare gigabytes of zeros, whose id is even right.  Reading
it must not allocate what it cannot check first.  A blob declaring more
than 16 GiB is refused as corrupt before anything is read; one within the
cap but larger than the reading process can hold is refused before it is
allocated, with one line naming it (here ``ckpt cat --raw`` under a 1 GiB
address-space limit), and ``verify --full`` checks it without holding it.

Before the fix a 667-byte blob declaring 20 GiB made ``load`` grow to ~3 GB
and die with MemoryError (``ckpt cat --raw``: "internal error: MemoryError").
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import attrs
import blake3

import ckpt
from ckpt.objects import chunking, codec
from ckpt.objects.ids import Kind, ObjectId, object_id
from ckpt.objects.model import TreeEntry

from ._support import Figures

#: The address space the reading process may use.
LIMIT = 1 << 30


def _bomb(repo: ckpt.Repository, copies: int, *, right_id: bool) -> tuple[ObjectId, int]:
    """Store a chunked blob naming one zero chunk ``copies`` times; return its id and size."""
    zero = bytes(chunking.MAX_CHUNK)
    cid = object_id(Kind.CHUNK, zero)
    length = copies * len(zero)
    hasher = blake3.blake3(f"blob {length}\0".encode(), max_threads=blake3.blake3.AUTO)
    if right_id:
        for _ in range(copies):
            hasher.update(zero)
    oid = ObjectId(hasher.hexdigest())
    stored = codec.encode_entry(
        Kind.BLOB, length, chunking.encode_list([(cid, len(zero))] * copies, b""), chunked=True
    )
    repo.objects._write_pack(
        [(bytes.fromhex(cid), codec.encode(Kind.CHUNK, zero)), (bytes.fromhex(oid), stored)]
    )
    return oid, len(stored)


def _commit_stage(repo: ckpt.Repository, job_name: str, stage: str, oid: ObjectId) -> None:
    """Make ``oid`` the value of ``stage`` in a new commit on top of the job's head."""
    job = repo.job(job_name)
    head = job.head
    assert head is not None
    tree = job.tree().with_entry(TreeEntry(stage, oid, "bytes", 0, "raw"))
    with repo.objects.batch() as batch:
        tree_id = batch.put_tree(tree)
        commit = attrs.evolve(head, tree=tree_id, parents=(head.id,), seq=head.seq + 1)
        new = batch.put_commit(commit)
    job.refs.update("refs/heads/main", head.id, new, "test: plant a bomb")


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def _ckpt_limited(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ckpt", "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited,
    )


def test_a_chunk_list_bomb_is_refused_before_it_is_allocated(
    tmp_path: Path, figures: Figures
) -> None:
    store = tmp_path / "store"
    repo = ckpt.init(store)
    repo.job("bombed").save("small", {"ok": True})
    huge, huge_stored = _bomb(repo, 163_840, right_id=False)  # 20 GiB declared
    _commit_stage(repo, "bombed", "huge", huge)
    large, large_stored = _bomb(repo, 16_384, right_id=True)  # 2 GiB of zeros, right id
    _commit_stage(repo, "bombed", "large", large)

    over_cap = _ckpt_limited(store, "cat", "bombed", "huge", "--raw")
    assert over_cap.returncode == 5, over_cap.stderr
    assert f"stage 'huge': object {huge} is corrupt: declared size" in over_cap.stderr
    assert len(over_cap.stderr.splitlines()) == 1

    too_large = _ckpt_limited(store, "cat", "bombed", "large", "--raw")
    assert too_large.returncode == 1, too_large.stderr
    assert too_large.stderr.startswith(f"Error: object {large} is 2.0 GiB, more than this")
    assert "internal error" not in too_large.stderr
    assert len(too_large.stderr.splitlines()) == 1

    verify = _ckpt_limited(store, "verify", "--full", "--json")
    assert verify.returncode == 5, verify.stderr
    assert f'"subject": "{huge}"' in verify.stdout
    assert f'"subject": "{large}"' not in verify.stdout  # whole, checked without holding it
    assert ckpt.open(store).job("bombed").load("small") == {"ok": True}
    figures.set("bombs_refused", 2)
    figures.set("bomb_bytes_on_disk", max(huge_stored, large_stored))
    figures.set("declared_gib", [20, 2])
