"""The LangGraph saver's serializer: LangGraph's format, built back only from an allow-list."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import operator
import os
import subprocess
import sys
import uuid
from typing import Annotated, Any, TypedDict

import ormsgpack
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.serde import jsonplus
from langgraph.graph import START, StateGraph
from langgraph.types import Command, Interrupt, Send

from ckpt.errors import CkptError, SerializationError
from ckpt.integrations.langgraph import AllowListSerializer, CkptSaver, ForbiddenTypeError


@dataclasses.dataclass
class Plan:
    steps: list[str]


class Colour(enum.Enum):
    RED = "red"


class Profile(pydantic.BaseModel):
    name: str
    age: int


def user_function(value: Any) -> Any:  # a callable that is not a class
    return value


REFERENCE = jsonplus.JsonPlusSerializer(allowed_msgpack_modules=True)

int64 = st.integers(-(2**63), 2**63 - 1)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    int64,
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.dates(),
    st.timedeltas(),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.builds(HumanMessage, st.text(max_size=20)),
    st.builds(AIMessage, st.text(max_size=20)),
    st.builds(ToolMessage, st.text(max_size=20), tool_call_id=st.text(min_size=1, max_size=5)),
    st.builds(Send, st.sampled_from(["a", "b"]), int64),
    st.builds(Interrupt, st.text(max_size=10), id=st.text(min_size=1, max_size=8)),
    st.frozensets(int64, max_size=4),
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(values)
def test_safe_values_read_back_as_langgraph_reads_them(value: Any) -> None:
    serde = AllowListSerializer()
    typed = serde.dumps_typed(value)
    assert typed == REFERENCE.dumps_typed(value)  # the very bytes LangGraph writes
    assert serde.loads_typed(typed) == REFERENCE.loads_typed(typed)


def test_langgraph_own_values() -> None:
    serde = AllowListSerializer()
    for value in (Command(resume={"a": 1}, goto="x"), {1, 2}, b"raw", bytearray(b"x"), None):
        assert serde.loads_typed(serde.dumps_typed(value)) == value


@pytest.mark.parametrize(
    "value", [Plan(["a"]), Colour.RED, Profile(name="x", age=3), [{"deep": Plan([])}]]
)
def test_a_type_of_the_users_is_refused_until_allowed(value: Any) -> None:
    typed = AllowListSerializer().dumps_typed(value)
    with pytest.raises(ForbiddenTypeError) as refused:
        AllowListSerializer().loads_typed(typed)
    assert f"allow=[('{__name__}'" in str(refused.value)
    assert isinstance(refused.value, SerializationError)
    for allow in ([Plan, Colour, Profile], [__name__], [(__name__, n) for n in _names]):
        assert AllowListSerializer(allow).loads_typed(typed) == value


_names = ("Plan", "Colour", "Profile")


def _ext(code: int, *parts: Any) -> bytes:
    return ormsgpack.packb(ormsgpack.Ext(code, ormsgpack.packb(parts)))


def test_an_allowed_module_lends_only_the_classes_it_defines() -> None:
    serde = AllowListSerializer([__name__])
    for name in ("os", "user_function", "dataclasses", "AllowListSerializer"):
        with pytest.raises(ForbiddenTypeError, match="not a class defined there"):
            serde.loads_typed(
                ("msgpack", _ext(jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG, __name__, name, 1))
            )
    with pytest.raises(ForbiddenTypeError, match=r"refused to build ckpt\.errors\.CkptError"):
        AllowListSerializer(["ckpt"]).loads_typed(
            ("msgpack", _ext(jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG, "ckpt.errors", "CkptError", "x"))
        )


def test_nothing_outside_the_list_is_imported_or_called() -> None:
    serde = AllowListSerializer()
    cases = {
        "refused to build os.system": _ext(
            jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG, "os", "system", "x"
        ),
        "refused to build subprocess.Popen": _ext(
            jsonplus.EXT_CONSTRUCTOR_POS_ARGS, "subprocess", "Popen", ["true"]
        ),
        "refused to build not_a_module_anywhere.X": _ext(
            jsonplus.EXT_CONSTRUCTOR_KW_ARGS, "not_a_module_anywhere", "X", {}
        ),
        "refused to call pathlib.Path.read_text": _ext(
            jsonplus.EXT_METHOD_SINGLE_ARG, "pathlib", "Path", "/etc/hostname", "read_text"
        ),
        "refused to build builtins.eval": _ext(
            jsonplus.EXT_PYDANTIC_V2, "builtins", "eval", {"source": "1"}, "model_validate"
        ),
    }
    for expected, data in cases.items():
        with pytest.raises(ForbiddenTypeError, match=expected):
            serde.loads_typed(("msgpack", data))
    assert "not_a_module_anywhere" not in __import__("sys").modules
    with pytest.raises(ForbiddenTypeError, match="refused to load a pickle"):
        serde.loads_typed(("pickle", b"\x80\x04K\x01."))


def test_garbage_gives_a_clear_error() -> None:
    serde = AllowListSerializer()
    with pytest.raises(SerializationError, match="unknown serialization type 'yaml'"):
        serde.loads_typed(("yaml", b"x: 1"))
    with pytest.raises(SerializationError, match="not valid msgpack"):
        serde.loads_typed(("msgpack", b"\xc1"))
    with pytest.raises(SerializationError, match="unknown msgpack extension 42"):
        serde.loads_typed(("msgpack", ormsgpack.packb(ormsgpack.Ext(42, b""))))
    with pytest.raises(SerializationError, match="not valid JSON"):
        serde.loads_typed(("json", b"{"))


def test_the_older_json_form() -> None:
    serde = AllowListSerializer([Plan])
    message = {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain", "schema", "messages", "HumanMessage"],
        "kwargs": {"content": "hi"},
    }
    assert serde.loads_typed(("json", json.dumps(message).encode())) == HumanMessage("hi")
    plan = {"lc": 2, "type": "constructor", "id": [__name__, "Plan"], "kwargs": {"steps": []}}
    assert serde.loads_typed(("json", json.dumps(plan).encode())) == Plan([])
    prompt = {"lc": 1, "type": "constructor", "id": ["langchain_core", "prompts", "PromptTemplate"]}
    for refused in (prompt, {**plan, "id": ["os", "system"]}):
        with pytest.raises(ForbiddenTypeError):
            serde.loads_typed(("json", json.dumps(refused).encode()))


@pytest.mark.parametrize("entry", ["not a module", ("os",), 42, ("a", "b.c"), "../x"])
def test_a_bad_allow_entry_is_refused(entry: Any) -> None:
    with pytest.raises(CkptError, match="is neither a class"):
        AllowListSerializer([entry])


def test_langgraph_can_widen_the_list() -> None:
    serde = AllowListSerializer()
    wider = serde.with_msgpack_allowlist([(__name__, "Plan")])
    assert wider.loads_typed(serde.dumps_typed(Plan(["x"]))) == Plan(["x"])
    with pytest.raises(ForbiddenTypeError):
        serde.loads_typed(serde.dumps_typed(Plan(["x"])))


class State(TypedDict):
    plans: Annotated[list[Plan], operator.add]


def _plans_graph(saver: CkptSaver) -> Any:
    builder = StateGraph(State)
    builder.add_node("plan", lambda state: {"plans": [Plan([str(len(state["plans"]))])]})
    builder.add_edge(START, "plan")
    return builder.compile(checkpointer=saver)


def test_a_saver_reads_the_users_types_once_allowed() -> None:
    location = f"memory://{uuid.uuid4().hex}"
    cfg = {"configurable": {"thread_id": "plans"}}
    with CkptSaver(location, allow=[Plan]) as saver:
        app = _plans_graph(saver)
        assert app.invoke({"plans": []}, cfg) == {"plans": [Plan(["0"])]}
        assert app.get_state(cfg).values == {"plans": [Plan(["0"])]}
        strict = _plans_graph(CkptSaver(saver.repo))
        with pytest.raises(
            ForbiddenTypeError, match=f"channel 'plans': refused to build {__name__}.Plan"
        ):
            strict.get_state(cfg)
        by_module = _plans_graph(CkptSaver(saver.repo, allow=[__name__]))
        assert by_module.get_state(cfg).values == {"plans": [Plan(["0"])]}
    with pytest.raises(CkptError, match="pass allow= or serde=, not both"):
        CkptSaver(location, allow=[Plan], serde=REFERENCE)


def test_values_that_cannot_be_serialized_name_the_channel() -> None:
    saver = CkptSaver(f"memory://{uuid.uuid4().hex}")
    builder = StateGraph(State)
    builder.add_node("plan", lambda state: {"plans": [object()]})
    builder.add_edge(START, "plan")
    with pytest.raises(
        SerializationError, match="thread 'x', write to 'plans': cannot serialize a list"
    ):
        builder.compile(checkpointer=saver).invoke(
            {"plans": []}, {"configurable": {"thread_id": "x"}}
        )
    assert os.environ.get("LANGGRAPH_STRICT_MSGPACK") in (None, "", "false")


STRICT_SCRIPT = """
import dataclasses, operator, sys, uuid
from typing import Annotated, TypedDict
from langgraph.graph import START, StateGraph
from ckpt.integrations.langgraph import CkptSaver

@dataclasses.dataclass
class Plan:
    steps: list[str]

class State(TypedDict):
    plans: Annotated[list[Plan], operator.add]

builder = StateGraph(State)
builder.add_node("plan", lambda state: {"plans": [Plan(["x"])]})
builder.add_edge(START, "plan")
app = builder.compile(checkpointer=CkptSaver(f"memory://{uuid.uuid4().hex}"))
cfg = {"configurable": {"thread_id": "t"}}
app.invoke({"plans": []}, cfg)
try:
    print(app.get_state(cfg).values)
except Exception as exc:
    print(type(exc).__name__)
"""


@pytest.mark.parametrize("strict", ["true", "false"])
def test_langgraph_strict_mode_allows_the_state_schemas_types(strict: str) -> None:
    """With LANGGRAPH_STRICT_MSGPACK=true, LangGraph widens the saver's list with the types of
    the graph's state schema; without it, they must be allowed by hand."""
    done = subprocess.run(
        [sys.executable, "-c", STRICT_SCRIPT],
        capture_output=True,
        text=True,
        env={**os.environ, "LANGGRAPH_STRICT_MSGPACK": strict},
        timeout=120,
        check=True,
    )
    expected = "{'plans': [Plan(steps=['x'])]}" if strict == "true" else "ForbiddenTypeError"
    assert done.stdout.strip() == expected
