"""A LangGraph thread planted in a store by someone else runs none of its code when read.

The planted thread's values name a module ``ckpt_evil_payload`` (on the
reader's path; importing it leaves a marker file) and ``os.system`` (called,
it would leave the marker too), in a channel value, in the checkpoint's
metadata, in a pending write, in LangGraph's older JSON form, as a method
call (``Path.read_text``), and as a pickle.  A fresh process then reads the store every way
there is: ``get_tuple``, ``list``, ``get_state``, ``get_state_history``
(sync and async), ``ckpt log``, ``show``, ``cat`` (with and without
``--raw``), ``export`` and ``verify``.  The marker never appears and the
module is never imported; the saver's reads fail with ForbiddenTypeError
naming the type.  The same store read with LangGraph's default serializer
does run the payload: the plant is live.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import ormsgpack
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde import jsonplus
from langgraph.checkpoint.serde.base import SerializerProtocol

import ckpt
from ckpt.integrations.langgraph import CkptSaver

EVIL_MODULE = "ckpt_evil_payload"


@attrs.frozen
class Planted:
    """A value the planting serializer writes as the given raw form."""

    kind: str  # "ext" (msgpack extension), "pickle" or "json"
    payload: Any


class _Opener:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


class Planter(SerializerProtocol):
    """LangGraph's serializer, except that :class:`Planted` values are written as given."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if isinstance(obj, Planted) and obj.kind == "pickle":
            return "pickle", pickle.dumps(obj.payload)
        if isinstance(obj, Planted) and obj.kind == "json":
            return "json", json.dumps(obj.payload).encode()

        def default(value: Any) -> Any:
            if isinstance(value, Planted):
                code, parts = value.payload
                return ormsgpack.Ext(code, ormsgpack.packb(parts))
            return jsonplus._msgpack_default(value)

        return "msgpack", ormsgpack.packb(obj, default=default, option=jsonplus._option)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        raise AssertionError("the planter only writes")


def plant(store: Path, marker: Path) -> list[str]:
    """Write the hostile thread ``victim``; return the ids of its checkpoints."""
    touch = f"touch {marker}"
    construct = (jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG, (EVIL_MODULE, "Exploit", touch))
    system = (jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG, ("os", "system", touch))
    method = (jsonplus.EXT_METHOD_SINGLE_ARG, ("pathlib", "Path", "/etc/hostname", "read_text"))
    lc2 = {"lc": 2, "type": "constructor", "id": [EVIL_MODULE, "Exploit"], "args": [touch]}
    saver = CkptSaver(ckpt.init(store), serde=Planter())
    cfg: Any = {"configurable": {"thread_id": "victim", "checkpoint_ns": ""}}
    # (channel value, value in the metadata, value of a pending write) of each checkpoint
    plants: list[tuple[Any, Any, Any]] = [
        (Planted("ext", construct), None, None),
        (Planted("ext", system), None, None),
        (Planted("ext", method), None, None),
        (Planted("json", lc2), None, None),
        (Planted("pickle", _Opener(str(marker))), None, None),
        ("clean", Planted("ext", system), None),
        ("clean", None, Planted("ext", construct)),
    ]
    ids = []
    for step, (value, note, write) in enumerate(plants):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": value, "n": step}
        checkpoint["channel_versions"] = {"messages": step + 1, "n": step + 1}
        metadata: Any = {"source": "loop", "step": step, "note": note}
        cfg = saver.put(cfg, checkpoint, metadata, {"messages": step + 1, "n": step + 1})
        saver.put_writes(cfg, [("messages", write)], f"task-{step}")
        ids.append(checkpoint["id"])
    saver.close()
    saver.repo.close()
    return ids


READER = Path(__file__).with_name("lg_hostile_reader.py")


def _run(mode: str, tmp_path: Path, store: Path, marker: Path, ids: list[str]) -> dict[str, Any]:
    modules = tmp_path / "modules"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(modules), str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run(
        [sys.executable, str(READER), mode, str(store), str(marker), json.dumps(ids)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_planted_thread_runs_nothing_on_any_read_path(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / f"{EVIL_MODULE}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "class Exploit:\n"
        "    def __init__(self, command):\n"
        "        import os\n"
        "        os.system(command)\n"
    )
    store = tmp_path / "store"
    ids = plant(store, marker)

    outcome = _run("saver", tmp_path, store, marker, ids)
    done: list[str] = outcome["done"]
    assert outcome["marker_exists"] is False, done
    assert outcome["modules"] == []
    assert not marker.exists()
    reads = [d for d in done if not d.startswith("ckpt ")]
    refused = [d for d in reads if "ForbiddenTypeError" in d]
    # Every read of a planted checkpoint is refused, naming what it would have built.
    for cid in ids:
        found = f"get_tuple {cid}: ForbiddenTypeError: thread 'victim', checkpoint {cid}"
        assert any(d.startswith(found) for d in done), (cid, done)
    for name in ("list all", "list thread", "alist thread", "get_state_history"):
        assert any(d.startswith(f"{name}: ForbiddenTypeError") for d in done), name
    assert any("refused to build ckpt_evil_payload.Exploit" in d for d in refused)
    assert any("refused to build os.system" in d for d in refused)
    assert any("refused to call pathlib.Path.read_text" in d for d in refused)
    assert any("refused to load a pickle" in d for d in refused)
    assert any(f"checkpoint {ids[5]}, header: refused to build os.system" in d for d in refused)
    assert any(f"checkpoint {ids[6]}, write of task task-6: refused" in d for d in refused)
    # The store's own commands never decode LangGraph values: they all work.
    cli = [d for d in done if d.startswith("ckpt ")]
    binary = "ckpt cat: exit 2"  # "stage ... holds N bytes of binary data; add --raw"
    assert cli and all(d.endswith(": exit 0") or d == binary for d in cli), cli
    assert {"ckpt export: exit 0", "ckpt cat --raw: exit 0", "ckpt verify: exit 0"} <= set(cli)

    control = _run("control", tmp_path, store, marker, ids)
    assert control["marker_exists"] is True  # LangGraph's default would have run it
    assert control["modules"] == [EVIL_MODULE]
