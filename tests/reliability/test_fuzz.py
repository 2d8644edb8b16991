"""
Property-based fuzzing (Hypothesis) of graph shapes, token formats, tokens, node names, inputs
and metric labels, with telemetry on.

- Random graph shapes, valid and invalid (random edges, routers, joins, branches, missing
  start/end, unknown names, odd ``max_steps``): only documented exception types escape, no run
  hangs, every span ends exactly once and the consumer always sees END.
- Special-token formats: either ``Callback()`` rejects them (``ValueError``/``TypeError``) or
  every stream renders; ``token_format`` likewise.
- Non-string tokens pass through unchanged; content equal to special-token strings never ends
  or corrupts a stream; odd node names work end to end; engine-reserved input keys never leak
  engine objects; metric labels stay within the cardinality limit.

Examples are derandomized (the same ones every run) and the example database is off; set
``GRAPHAI_FUZZ_RANDOM=1`` for fresh examples and ``GRAPHAI_FUZZ_SCALE=N`` for N times as many
(``docs/reliability.md``).
"""

from __future__ import annotations

import asyncio
import copy
import os
import string
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import graphai.telemetry as telemetry
from graphai import (
    Callback,
    EventCallback,
    GraphError,
    GraphEventType,
    StreamItem,
    node,
    parse_stream_token,
    router,
)
from graphai._stream import StreamBase as _StreamBase
from graphai.graph import Graph
from graphai.telemetry import env
from tests.reliability._support import Telemetry, size_knob

SCALE = size_knob("GRAPHAI_FUZZ_SCALE", 1)
RANDOM = os.environ.get("GRAPHAI_FUZZ_RANDOM", "").strip().lower() in ("1", "true", "yes")
RUN_TIMEOUT_S = 5.0
END = "<graphai:END:>"

# exceptions the engine documents for bad graphs and bad input (graphai/errors.py, and as in
# graphai-lib 0.0.12: AssertionError without a start node, KeyError('choice') from a router)
DOCUMENTED = (GraphError, ValueError, TypeError, KeyError, AssertionError)


def fuzz(max_examples: int) -> Any:
    return settings(
        max_examples=max_examples * SCALE,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@contextmanager
def fresh_telemetry(settings_: env.Settings | None = None) -> Iterator[Telemetry]:
    tel = Telemetry(settings_)
    try:
        yield tel
    finally:
        tel.close()


def run(coro: Any) -> Any:
    """One example's event loop; the whole example is bounded."""

    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(coro, RUN_TIMEOUT_S * 2)
        except TimeoutError:
            raise AssertionError("the example hung") from None

    return asyncio.run(bounded())


async def execute_and_drain(
    g: Graph, inp: Any, cb: Any
) -> tuple[Any, BaseException | None, list[Any]]:
    """Run with a concurrent consumer; both waits bounded (a hang fails the example)."""

    async def drain() -> list[Any]:
        return [t async for t in cb.aiter()]

    consumer = asyncio.ensure_future(drain())
    result: Any = None
    error: BaseException | None = None
    try:
        result = await asyncio.wait_for(g.execute(inp, callback=cb), RUN_TIMEOUT_S)
    except TimeoutError:
        consumer.cancel()
        raise AssertionError("execute() hung") from None
    except Exception as exc:
        error = exc
    try:
        items = await asyncio.wait_for(consumer, RUN_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(f"the consumer never saw END (execute: {error!r})") from None
    return result, error, items


# -- random graph shapes ------------------------------------------------------------------------
POOL = ["a", "b", "c", "d", "e"]
NAMES = st.sampled_from([*POOL, "zz"])  # "zz" never exists


def _make_node(spec: dict[str, Any]) -> Any:
    name, behaviour = spec["name"], spec["behaviour"]
    flags = {"start": spec["start"], "end": spec["end"], "name": name}
    if spec["router"]:

        async def route() -> Any:
            return behaviour

        return router(route, **flags)
    if spec["stream"]:

        async def streamer(callback: Any) -> Any:
            await callback.acall(f"{name}-tok")
            return behaviour

        return node(streamer, stream=True, **flags)
    if behaviour == "needs-param":

        async def needy(missing_param: int) -> Any:
            return {}

        return node(needy, **flags)

    async def plain() -> Any:
        return behaviour

    return node(plain, **flags)


node_specs = st.fixed_dictionaries(
    {
        "name": st.sampled_from(POOL),
        "start": st.booleans(),
        "end": st.booleans(),
        "stream": st.booleans(),
        "router": st.booleans(),
        "behaviour": st.one_of(
            st.just({}),
            st.just({"x": 1}),
            st.just({"success": False}),
            st.just("not-a-dict"),
            st.just("needs-param"),
            st.builds(lambda c: {"choice": c}, NAMES),
            st.builds(lambda c: {"choice": c}, st.integers(0, 3)),
            st.builds(lambda cs: {"choices": cs}, st.lists(NAMES, max_size=3)),
            st.just({"choices": "a"}),
        ),
    }
)

ops = st.one_of(
    st.tuples(st.just("edge"), NAMES, NAMES),
    st.tuples(st.just("edge_obj"), st.integers(), NAMES),
    st.tuples(st.just("router"), st.lists(NAMES, max_size=2), NAMES, st.lists(NAMES, max_size=3)),
    st.tuples(st.just("parallel"), NAMES, st.lists(NAMES, max_size=3)),
    st.tuples(st.just("join"), st.lists(NAMES, max_size=3), NAMES),
    st.tuples(st.just("branch"), NAMES, NAMES, st.booleans()),
    st.tuples(st.just("start"), NAMES),
    st.tuples(st.just("end"), NAMES),
)


def _apply(g: Graph, op: tuple[Any, ...]) -> None:
    kind = op[0]
    look = g.nodes.get
    if kind == "edge":
        g.add_edge(op[1], op[2])
    elif kind == "edge_obj":
        g.add_edge(op[1], op[2])  # a non-node object: TypeError
    elif kind == "router":
        r = look(op[2])
        g.add_router(op[1], r if r is not None else op[2], op[3])
    elif kind == "parallel":
        g.add_parallel(op[1], op[2])
    elif kind == "join":
        g.add_join(op[1], op[2])
    elif kind == "branch":
        g.add_branch(op[1], op[2], wait=op[3])
    elif kind == "start":
        n = look(op[1])
        g.set_start_node(n if n is not None else op[1])
    else:
        n = look(op[1])
        g.set_end_node(n if n is not None else op[1])


@fuzz(300)
@given(
    specs=st.lists(node_specs, min_size=0, max_size=5),
    operations=st.lists(ops, max_size=10),
    max_steps=st.integers(0, 5),
    compile_mode=st.sampled_from([None, False, True]),
    force_start=st.integers(0, 3),
)
def test_random_graphs_raise_only_documented_errors(
    specs: list[dict[str, Any]],
    operations: list[Any],
    max_steps: int,
    compile_mode: bool | None,
    force_start: int,
) -> None:
    if specs and force_start:  # mostly graphs that do have a start node
        specs[0] = {**specs[0], "start": True}
    with fresh_telemetry() as tel:
        g = Graph(max_steps=max_steps)
        for spec in specs:
            try:
                g.add_node(_make_node(spec))
            except DOCUMENTED:
                pass  # duplicate names, a second start node
        for op in operations:
            try:
                _apply(g, op)
            except DOCUMENTED:
                pass
        if compile_mode is not None:
            try:
                g.compile(strict=compile_mode)
            except DOCUMENTED:
                pass
        _, error, items = run(execute_and_drain(g, {"in": 1}, Callback()))
        event(f"execute: {type(error).__name__ if error else 'ok'}")
        if error is not None:
            assert isinstance(error, DOCUMENTED), f"undocumented {type(error).__name__}: {error}"
        assert items and items[-1] == END and items.count(END) == 1, items
        assert tel.counter.problems() == []
        assert telemetry.active_streams() == []
        spans = tel.spans()
        runs = [s for s in spans if s.name == "invoke_workflow graph"]
        assert len(runs) <= 1
        if runs:
            assert runs[0].attributes["graphai.run.outcome"] == ("error" if error else "ok")
        recorded = sum(p.count for p in tel.points("graphai.node.duration"))
        assert recorded == len(spans) - len(runs), "node duration points != node spans"


# -- special-token and token formats ------------------------------------------------------------
FORMAT_PIECES = st.sampled_from(
    [
        "{identifier}", "{token}", "{params}", "<", ">", ":", "|", "x", " ", "é", "{{", "}}",
        "{", "}", "{}", "{0}", "{foo}", "{token!r}", "{token!s}", "{token!z}", "{token:>3}",
        "{token:d}", "{token.upper}", "{token.nope}", "{token[0]}", "{params[0]}",
        "{identifier:", "{token:{params}}",
    ]
)  # fmt: skip
formats = st.one_of(
    st.lists(FORMAT_PIECES, max_size=6).map("".join),
    st.text(max_size=20),
    st.sampled_from([None, 5, b"<{token}>"]),
)
CONTENT = ["alpha", "", "béta", "<graphai:END:>"]


async def _stream_graph(
    cb: Any, tokens: list[Any], name: str = "speak"
) -> tuple[Any, Any, list[Any]]:
    async def speak(callback: Any) -> dict[str, Any]:
        for t in tokens:
            await callback.acall(t)
        return {"n": len(tokens)}

    g = Graph().add_node(node(speak, name=name, start=True, end=True, stream=True))
    return await execute_and_drain(g, {}, cb)


@fuzz(200)
@given(fmt=formats, identifier=st.one_of(st.text(max_size=8), st.none()))
def test_special_token_format_is_rejected_or_renders(fmt: Any, identifier: str | None) -> None:
    try:
        cb = Callback(identifier=identifier, special_token_format=fmt)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return
    with fresh_telemetry():
        result, error, items = run(_stream_graph(cb, CONTENT))
    assert error is None, f"format {fmt!r} accepted at construction, then {error!r}"
    assert result == {"n": len(CONTENT)}
    assert items[2:-2] == CONTENT
    assert items[0] == cb.build_special_token("speak:start")
    assert items[-1] == cb.build_special_token("END")


@fuzz(100)
@given(fmt=formats)
def test_token_format_is_rejected_or_renders(fmt: Any) -> None:
    try:
        cb = Callback(token_format=fmt)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return
    with fresh_telemetry():
        _, error, items = run(_stream_graph(cb, CONTENT))
    assert error is None, f"token_format {fmt!r} accepted at construction, then {error!r}"
    assert items[2:-2] == [fmt.format(token=t) for t in CONTENT]
    assert items[-1] == END


# -- tokens ------------------------------------------------------------------------------------
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
non_strings = st.one_of(
    st.integers(),
    st.none(),
    st.floats(allow_nan=False),
    st.binary(max_size=8),
    st.dictionaries(st.text(max_size=3), json_like, max_size=3),
    st.lists(json_like, max_size=3),
    st.tuples(st.integers(), st.text(max_size=3)),
)


@fuzz(100)
@given(
    tokens=st.lists(non_strings, min_size=1, max_size=10),
    token_format=st.sampled_from(["{token}", "[{token}]"]),
)
def test_non_string_tokens_pass_through_unchanged(tokens: list[Any], token_format: str) -> None:
    """Any object is a valid token; ``token_format`` applies to string tokens only."""
    cb = Callback(token_format=token_format)
    with fresh_telemetry():
        _, error, items = run(_stream_graph(cb, tokens))
    assert error is None
    got = items[2:-2]
    assert len(got) == len(tokens)
    assert all(g is t for g, t in zip(got, tokens, strict=True)), (got, tokens)


SPECIAL_LOOKALIKES = st.sampled_from(
    [
        "<graphai:END:>", "<graphai:END>", "<graphai:x:end:>", "<graphai:x:start:>", "<graphai:x:>",
        "<graphai:speak:end:>", "<graphai:speak:start:>", "<graphai:speak:>", "<graphai::>",
    ]
)  # fmt: skip


@fuzz(100)
@given(tokens=st.lists(SPECIAL_LOOKALIKES | st.text(max_size=6), min_size=1, max_size=12))
def test_content_equal_to_special_tokens_never_ends_the_stream(tokens: list[str]) -> None:
    with fresh_telemetry():
        _, error, items = run(_stream_graph(Callback(), tokens))
        _, error2, events = run(_stream_graph(EventCallback(), tokens))
    assert error is None and error2 is None
    assert items == [
        "<graphai:speak:start:>",
        "<graphai:speak:>",
        *tokens,
        "<graphai:speak:end:>",
        END,
    ]
    types = [e.type for e in events]
    assert types.count(GraphEventType.END) == 1 and types[-1] == GraphEventType.END
    assert [e.token for e in events if e.type == GraphEventType.CALLBACK] == tokens


# -- node names ----------------------------------------------------------------------------------
odd_names = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=" :\t\n<>{}", min_size=1, max_size=6),
    st.text(alphabet=string.ascii_letters + ":", min_size=200, max_size=400),
    st.sampled_from(["END", "a:b", "x:start", "x:end", "\u200b", "🙂 node", "名前", "\x00"]),
)


@fuzz(100)
@given(name=odd_names)
def test_odd_node_names_work_end_to_end(name: str) -> None:
    try:
        node(_noop_stream, name=name, start=True, end=True, stream=True)
    except TypeError:
        assert name == "", f"node name {name!r} rejected"
        return
    if name == "END" or name.endswith((":start", ":end")):
        # its id marker would read as another marker: rejected when the graph is built
        with pytest.raises(ValueError, match="is reserved"):
            Graph().add_node(node(_noop_stream, name=name, start=True, end=True, stream=True))
        return
    with fresh_telemetry() as tel:
        result, error, items = run(_stream_graph(Callback(), ["tok"], name=name))
        spans = tel.spans()
        assert tel.counter.problems() == []
    assert error is None and result == {"n": 1}
    start, end = f"<graphai:{name}:start:>", f"<graphai:{name}:end:>"
    assert items == [start, f"<graphai:{name}:>", "tok", end, END]
    assert parse_stream_token(start) == StreamItem("start", name, start)
    assert parse_stream_token(end) == StreamItem("end", name, end)
    node_spans = [s for s in spans if s.attributes.get("graphai.node.name") == name]
    assert len(node_spans) == 1 and node_spans[0].attributes["graphai.node.outcome"] == "ok"


async def _noop_stream(callback: Any) -> dict[str, Any]:
    return {}


# -- engine-reserved input keys --------------------------------------------------------------------
reserved_inputs = st.dictionaries(
    st.sampled_from(["callback", "state", "upstream", "input", "x"]),
    json_like | st.builds(object) | st.builds(Callback),
    max_size=5,
)


@fuzz(100)
@given(inp=reserved_inputs, with_state=st.booleans())
def test_reserved_input_keys_never_leak_engine_objects(
    inp: dict[str, Any], with_state: bool
) -> None:
    async def first(callback: Any) -> dict[str, Any]:
        await callback.acall("hi")
        return {"a": 1}

    async def middle(state: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
        state["seen"] = upstream["node"]
        return {"b": 2}

    async def last(**kwargs: Any) -> dict[str, Any]:
        return {"keys": sorted(kwargs)}

    g = Graph(initial_state={"s": 1} if with_state else None)
    g.add_node(node(first, start=True, stream=True)).add_node(node(middle))
    g.add_node(node(last, end=True))
    g.add_edge("first", "middle").add_edge("middle", "last")
    before = copy.copy(inp)
    cb = Callback()
    with fresh_telemetry() as tel:
        result, error, items = run(execute_and_drain(g, inp, cb))
        assert tel.counter.problems() == []
    assert error is None, repr(error)
    assert inp.keys() == before.keys() and all(inp[k] is before[k] for k in inp), "input mutated"
    assert items[-1] == END
    for key in ("callback", "state", "upstream"):
        if key in result:
            assert key in inp and result[key] is inp[key], f"engine {key!r} leaked into the result"
    engine = (cb, g.state)
    for key, value in result.items():
        assert not any(value is e for e in engine), f"{key!r} holds an engine object"
        assert not isinstance(value, _StreamBase) or value is inp.get(key), key
    assert result["a"] == 1 and result["b"] == 2 and g.state["seen"] == "first"


# -- metric label cardinality --------------------------------------------------------------------
LABEL_LIMIT = 5


@fuzz(15)
@given(n_names=st.integers(LABEL_LIMIT + 1, 40))
def test_metric_labels_stay_within_the_cardinality_limit(n_names: int) -> None:
    names = [f"node-{i:03d}" for i in range(n_names)]

    async def many() -> None:
        for name in names:
            g = Graph(name="cardinality").add_node(
                node(_noop_stream, name=name, start=True, end=True, stream=True)
            )
            await asyncio.wait_for(g.execute({}), RUN_TIMEOUT_S)

    with fresh_telemetry(env.Settings(label_limit=LABEL_LIMIT)) as tel:
        run(many())
        durations = tel.points("graphai.node.duration")
        overflow = tel.points("graphai.telemetry.label_overflow")
        spans = tel.spans()
    labels = {p.attributes["graphai.node.name"] for p in durations}
    assert labels == {*names[:LABEL_LIMIT], "_OTHER"}, labels
    assert sum(p.count for p in durations) == n_names
    by_attr = {p.attributes["attribute"]: p.value for p in overflow}
    assert by_attr == {"graphai.node.name": n_names - LABEL_LIMIT}, by_attr
    # spans are not metrics: they keep the real names
    assert {s.attributes.get("graphai.node.name") for s in spans} - {None} == set(names)
