"""The object database: ids, blobs, trees, commits and their stored form."""

from ckpt.objects.ids import CommitId, Kind, ObjectId, check_object_id, object_id
from ckpt.objects.model import Commit, Tree, TreeEntry
from ckpt.objects.store import ObjectStore

__all__ = [
    "Commit",
    "CommitId",
    "Kind",
    "ObjectId",
    "ObjectStore",
    "Tree",
    "TreeEntry",
    "check_object_id",
    "object_id",
]
