"""ckpt: a content-addressed checkpoint store for long, expensive pipelines.

Quick start::

    import ckpt

    repo = ckpt.init("./.ckpt")          # or ckpt.open() to find an existing store
    job = repo.job("novel-42")
    job.save("outline", {"chapters": 12}, cost=0.12, tokens=1834)
    job.load("outline")                  # -> {"chapters": 12}

Names are imported lazily so that ``import ckpt`` (and ``ckpt --help``)
stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "init": "ckpt.repo",
    "open": "ckpt.repo",
    "find_store": "ckpt.repo",
    "Repository": "ckpt.repo",
    "Job": "ckpt.job",
    "CheckoutResult": "ckpt.job",
    "Commit": "ckpt.objects.model",
    "Tree": "ckpt.objects.model",
    "TreeEntry": "ckpt.objects.model",
    "ObjectId": "ckpt.objects.ids",
    "CommitId": "ckpt.objects.ids",
    "ReflogEntry": "ckpt.refs",
    "VerifyReport": "ckpt.verify",
    "GcReport": "ckpt.gc",
    "CkptError": "ckpt.errors",
    "NotFoundError": "ckpt.errors",
    "ObjectNotFoundError": "ckpt.errors",
    "StoreNotFoundError": "ckpt.errors",
    "StoreExistsError": "ckpt.errors",
    "ConflictError": "ckpt.errors",
    "CorruptObjectError": "ckpt.errors",
    "CorruptRefError": "ckpt.errors",
    "InvalidNameError": "ckpt.errors",
    "InvalidRevisionError": "ckpt.errors",
    "SerializationError": "ckpt.errors",
    "StorageError": "ckpt.errors",
    "Pipeline": "ckpt.pipeline",
    "RunResult": "ckpt.pipeline",
    "StageContext": "ckpt.pipeline",
    "StageEvent": "ckpt.pipeline",
    "CostLimitExceeded": "ckpt.pipeline",
    "InputMismatchError": "ckpt.pipeline",
    "Stage": "ckpt.stages",
    "StageResult": "ckpt.stages",
    "stage": "ckpt.stages",
    "Progress": "ckpt.progress",
    "watch": "ckpt.progress",
    "click_options": "ckpt.clickopts",
    "Runner": "ckpt.clickopts",
    "AgentRun": "ckpt.agent",
    "AgentState": "ckpt.agent",
    "Message": "ckpt.agent",
    "ToolCall": "ckpt.agent",
    "list_jobs": "ckpt.listing",
    "expire_due": "ckpt.listing",
}

__all__ = [
    "AgentRun",
    "AgentState",
    "CheckoutResult",
    "CkptError",
    "Commit",
    "CommitId",
    "ConflictError",
    "CorruptObjectError",
    "CorruptRefError",
    "CostLimitExceeded",
    "GcReport",
    "InputMismatchError",
    "InvalidNameError",
    "InvalidRevisionError",
    "Job",
    "Message",
    "NotFoundError",
    "ObjectId",
    "ObjectNotFoundError",
    "Pipeline",
    "Progress",
    "ReflogEntry",
    "Repository",
    "RunResult",
    "Runner",
    "SerializationError",
    "Stage",
    "StageContext",
    "StageEvent",
    "StageResult",
    "StorageError",
    "StoreExistsError",
    "StoreNotFoundError",
    "ToolCall",
    "Tree",
    "TreeEntry",
    "VerifyReport",
    "__version__",
    "click_options",
    "expire_due",
    "find_store",
    "init",
    "list_jobs",
    "open",
    "stage",
    "watch",
]

if TYPE_CHECKING:
    from ckpt.agent import AgentRun, AgentState, Message, ToolCall
    from ckpt.clickopts import Runner, click_options
    from ckpt.errors import (
        CkptError,
        ConflictError,
        CorruptObjectError,
        CorruptRefError,
        InvalidNameError,
        InvalidRevisionError,
        NotFoundError,
        ObjectNotFoundError,
        SerializationError,
        StorageError,
        StoreExistsError,
        StoreNotFoundError,
    )
    from ckpt.gc import GcReport
    from ckpt.job import CheckoutResult, Job
    from ckpt.listing import expire_due, list_jobs
    from ckpt.objects.ids import CommitId, ObjectId
    from ckpt.objects.model import Commit, Tree, TreeEntry
    from ckpt.pipeline import (
        CostLimitExceeded,
        InputMismatchError,
        Pipeline,
        RunResult,
        StageContext,
        StageEvent,
    )
    from ckpt.progress import Progress, watch
    from ckpt.refs import ReflogEntry
    from ckpt.repo import Repository, find_store, init, open
    from ckpt.stages import Stage, StageResult, stage
    from ckpt.verify import VerifyReport


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'ckpt' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
