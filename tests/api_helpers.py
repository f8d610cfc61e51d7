"""Helpers shared by the API tests of tests/history and tests/maintenance."""

from __future__ import annotations

import os
from pathlib import Path

import ckpt
from ckpt.objects.ids import Kind, ObjectId


def store_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content."""
    found = {}
    for dirpath, _dirs, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


def object_ids(repo: ckpt.Repository, kind: Kind | None = None) -> set[ObjectId]:
    ids = {stored.id for stored in repo.objects}
    if kind is None:
        return ids
    return {oid for oid in ids if repo.objects.kind_of(oid) is kind}
