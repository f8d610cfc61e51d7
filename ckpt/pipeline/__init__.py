"""The pipeline runner: stages, run state, progress, agent runs, command-line options.

``from ckpt.pipeline import Pipeline`` keeps working: the runner's public
names are re-exported here, lazily, so that importing one module of this
package (``ckpt.pipeline.progress``, say) does not import the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_RUNNER_NAMES = (
    "CostLimitExceeded",
    "InputMismatchError",
    "Pipeline",
    "RunResult",
    "StageContext",
    "StageEvent",
)

__all__ = [
    "CostLimitExceeded",
    "InputMismatchError",
    "Pipeline",
    "RunResult",
    "StageContext",
    "StageEvent",
]

if TYPE_CHECKING:
    from ckpt.pipeline.runner import (
        CostLimitExceeded,
        InputMismatchError,
        Pipeline,
        RunResult,
        StageContext,
        StageEvent,
    )


def __getattr__(name: str) -> Any:
    if name not in _RUNNER_NAMES:
        # A module of this package (``ckpt.pipeline.progress``), imported on first use.
        import importlib
        import importlib.util

        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'ckpt.pipeline' has no attribute {name!r}")
    from ckpt.pipeline import runner

    return getattr(runner, name)
