"""ckpt: a content-addressed checkpoint store for long, expensive pipelines.

Quick start::

    import ckpt

    repo = ckpt.init("./.ckpt", exist_ok=True)  # or ckpt.open() to find an existing store
    job = repo.job("novel-42")
    job.save("outline", {"chapters": 12}, cost=0.12, tokens=1834)
    job.load("outline")                  # -> {"chapters": 12}
    job.save("render", {"video": ckpt.File("out/final.mp4"), "seconds": 61.2})

Names are imported lazily so that ``import ckpt`` (and ``ckpt --help``)
stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "init": "ckpt.repository",
    "open": "ckpt.repository",
    "find_store": "ckpt.repository",
    "Repository": "ckpt.repository",
    "Job": "ckpt.history.job",
    "CheckoutResult": "ckpt.history.job",
    "Commit": "ckpt.objects.model",
    "Tree": "ckpt.objects.model",
    "TreeEntry": "ckpt.objects.model",
    "ObjectId": "ckpt.objects.ids",
    "CommitId": "ckpt.objects.ids",
    "ReflogEntry": "ckpt.history.refs",
    "VerifyReport": "ckpt.maintenance.verify",
    "GcReport": "ckpt.maintenance.gc",
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
    "FileValueError": "ckpt.errors",
    "File": "ckpt.values.files",
    "Directory": "ckpt.values.files",
    "StorageError": "ckpt.errors",
    "Pipeline": "ckpt.pipeline.runner",
    "RunResult": "ckpt.pipeline.runner",
    "StageContext": "ckpt.pipeline.runner",
    "StageEvent": "ckpt.pipeline.runner",
    "CostLimitExceeded": "ckpt.pipeline.runner",
    "InputMismatchError": "ckpt.pipeline.runner",
    "MissingInputError": "ckpt.pipeline.runner",
    "StaleStagesError": "ckpt.pipeline.runner",
    "StaleStageWarning": "ckpt.pipeline.runner",
    "LeaseHeldError": "ckpt.pipeline.lease",
    "LeaseLostError": "ckpt.pipeline.lease",
    "Stage": "ckpt.pipeline.stages",
    "StageResult": "ckpt.pipeline.stages",
    "stage": "ckpt.pipeline.stages",
    "Progress": "ckpt.pipeline.progress",
    "read_progress": "ckpt.pipeline.progress",
    "watch": "ckpt.pipeline.progress",
    "click_options": "ckpt.pipeline.clickopts",
    "Runner": "ckpt.pipeline.runflags",
    "add_checkpoint_arguments": "ckpt.pipeline.argparseopts",
    "runner_from_args": "ckpt.pipeline.argparseopts",
    "AgentRun": "ckpt.pipeline.agent",
    "AgentState": "ckpt.pipeline.agent",
    "Message": "ckpt.pipeline.agent",
    "ToolCall": "ckpt.pipeline.agent",
    "list_jobs": "ckpt.pipeline.listing",
    "expire_due": "ckpt.pipeline.listing",
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
    "Directory",
    "File",
    "FileValueError",
    "GcReport",
    "InputMismatchError",
    "InvalidNameError",
    "InvalidRevisionError",
    "Job",
    "LeaseHeldError",
    "LeaseLostError",
    "Message",
    "MissingInputError",
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
    "StaleStageWarning",
    "StaleStagesError",
    "StorageError",
    "StoreExistsError",
    "StoreNotFoundError",
    "ToolCall",
    "Tree",
    "TreeEntry",
    "VerifyReport",
    "__version__",
    "add_checkpoint_arguments",
    "click_options",
    "expire_due",
    "find_store",
    "init",
    "list_jobs",
    "open",
    "read_progress",
    "runner_from_args",
    "stage",
    "watch",
]

if TYPE_CHECKING:
    from ckpt.errors import (
        CkptError,
        ConflictError,
        CorruptObjectError,
        CorruptRefError,
        FileValueError,
        InvalidNameError,
        InvalidRevisionError,
        NotFoundError,
        ObjectNotFoundError,
        SerializationError,
        StorageError,
        StoreExistsError,
        StoreNotFoundError,
    )
    from ckpt.history.job import CheckoutResult, Job
    from ckpt.history.refs import ReflogEntry
    from ckpt.maintenance.gc import GcReport
    from ckpt.maintenance.verify import VerifyReport
    from ckpt.objects.ids import CommitId, ObjectId
    from ckpt.objects.model import Commit, Tree, TreeEntry
    from ckpt.pipeline.agent import AgentRun, AgentState, Message, ToolCall
    from ckpt.pipeline.argparseopts import add_checkpoint_arguments, runner_from_args
    from ckpt.pipeline.clickopts import click_options
    from ckpt.pipeline.lease import LeaseHeldError, LeaseLostError
    from ckpt.pipeline.listing import expire_due, list_jobs
    from ckpt.pipeline.progress import Progress, read_progress, watch
    from ckpt.pipeline.runflags import Runner
    from ckpt.pipeline.runner import (
        CostLimitExceeded,
        InputMismatchError,
        MissingInputError,
        Pipeline,
        RunResult,
        StageContext,
        StageEvent,
        StaleStagesError,
        StaleStageWarning,
    )
    from ckpt.pipeline.stages import Stage, StageResult, stage
    from ckpt.repository import Repository, find_store, init, open
    from ckpt.values.files import Directory, File


#: Modules reachable as attributes of ``ckpt`` without importing them first, as the docs
#: write them (``ckpt.progress.read_progress(job)``, ``ckpt.pipeline.progress...``).
_MODULES = {
    "progress": "ckpt.pipeline.progress",
    "pipeline": "ckpt.pipeline",
}


def __getattr__(name: str) -> Any:
    import importlib

    module_name = _EXPORTS.get(name)
    if module_name is None:
        if name in _MODULES:
            module = importlib.import_module(_MODULES[name])
            globals()[name] = module
            return module
        raise AttributeError(f"module 'ckpt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
