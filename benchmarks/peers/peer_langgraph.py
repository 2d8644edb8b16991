"""
LangGraph peer, written as LangGraph's docs show: a ``StateGraph`` over a ``TypedDict`` state,
async node functions returning partial updates, ``compile()``, ``astream``/``ainvoke``.

Stream variants (``--variant``):

- ``custom``: the node calls ``get_stream_writer()`` and writes each token;
  ``astream(stream_mode=["custom", "values"])``.
- ``messages``: the node awaits a chat model (``await model.ainvoke(messages)``) and LangGraph
  streams the model's tokens, ``astream(stream_mode=["messages", "values"])``. The model is a
  minimal ``BaseChatModel`` whose ``_astream`` yields one ``AIMessageChunk`` per token (no
  network): the path every LangChain chat-model integration takes. Its own cost, measured
  alone after the run (``model.astream`` outside any graph), is in the JSON facts.

Chain: one node per step, ``add_edge`` between them; LangGraph 1.2's default recursion limit
(10007 super-steps, in ``langgraph._internal._config``) covers 1000 nodes, so no config is
passed; a longer chain gets ``recursion_limit`` raised, as the docs say. Fan-out: 20 edges
from ``start``, each branch appends to a list channel with an ``operator.add`` reducer, and
``add_edge([b0, ..., b19], "join")`` waits for all of them.

Telemetry: ``sdk`` sets the SDK providers only; ``on`` also runs OpenLLMetry's
``LangchainInstrumentor().instrument(tracer_provider=..., meter_provider=...)`` (package
opentelemetry-instrumentation-langchain) with its defaults (prompt and completion content
captured, as it does unless ``TRACELOOP_TRACE_CONTENT=false``).
"""

from __future__ import annotations

import argparse
import operator
import os
import sys
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    FANOUT,
    FANOUT_TOTAL,
    Peer,
    Run,
    Telemetry,
    check_equal,
    check_tokens,
    consume_into,
    main,
    perf_counter,
    tokens,
)
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph

PEER = Peer(
    engine="LangGraph",
    dists=(
        "langgraph",
        "langchain-core",
        "opentelemetry-instrumentation-langchain",
        "opentelemetry-sdk",
    ),
    module="langgraph",
    build=lambda args: build(args),
    variants=("custom", "messages"),
)


def default_recursion_limit() -> int:
    """The limit LangGraph fills in when the config sets none (langchain-core's own is 25)."""
    try:
        from langgraph._internal import _config

        return int(_config.DEFAULT_RECURSION_LIMIT)
    except (ImportError, AttributeError):  # another layout: langchain-core's default
        from langchain_core.runnables import config as lc_config

        return int(lc_config.DEFAULT_RECURSION_LIMIT)


# -- stream: custom --------------------------------------------------------------------------
class StreamState(TypedDict, total=False):
    n: int
    done: int


async def produce(state: StreamState) -> dict[str, Any]:
    write = get_stream_writer()
    for t in tokens(state["n"]):
        write(t)
    return {"done": state["n"]}


def custom_run() -> Run:
    builder = StateGraph(StreamState)
    builder.add_node("produce", produce)
    builder.add_edge(START, "produce")
    builder.add_edge("produce", END)
    app = builder.compile()

    async def once(n: int) -> tuple[float, str | None]:
        items: list[tuple[str, Any]] = []
        t0 = perf_counter()
        await consume_into(items, app.astream({"n": n}, stream_mode=["custom", "values"]))
        dt = perf_counter() - t0
        got = [chunk for mode, chunk in items if mode == "custom"]
        final = [chunk for mode, chunk in items if mode == "values"][-1]
        return dt, check_tokens(got, n) or check_equal("final done", final.get("done"), n)

    return once


# -- stream: messages ------------------------------------------------------------------------
class TokenModel(BaseChatModel):
    """A chat model that answers a prompt ``"N"`` with ``tokens(N)``, one chunk per token."""

    @property
    def _llm_type(self) -> str:
        return "bench-tokens"

    def _generate(self, messages: list[BaseMessage], *a: Any, **kw: Any) -> ChatResult:
        text = "".join(tokens(int(str(messages[-1].content))))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for t in tokens(int(str(messages[-1].content))):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=t))
            if run_manager:
                await run_manager.on_llm_new_token(t, chunk=chunk)
            yield chunk


model = TokenModel()


async def call_model(state: MessagesState) -> dict[str, Any]:
    response = await model.ainvoke(state["messages"])
    return {"messages": [response]}


def messages_run() -> Run:
    builder = StateGraph(MessagesState)
    builder.add_node("call_model", call_model)
    builder.add_edge(START, "call_model")
    builder.add_edge("call_model", END)
    app = builder.compile()

    async def once(n: int) -> tuple[float, str | None]:
        items: list[tuple[str, Any]] = []
        t0 = perf_counter()
        stream = app.astream(
            {"messages": [HumanMessage(content=str(n))]}, stream_mode=["messages", "values"]
        )
        await consume_into(items, stream)
        dt = perf_counter() - t0
        # langchain-core ends a stream with an empty chunk (chunk_position="last")
        got = [c[0].content for mode, c in items if mode == "messages" and c[0].content]
        final = [c for mode, c in items if mode == "values"][-1]["messages"][-1]
        return dt, check_tokens(got, n) or check_equal(
            "final message length", len(final.content), len("".join(tokens(n)))
        )

    return once


async def model_alone(n: int) -> float:
    """``model.astream`` outside any graph, ``n`` tokens after a warmup of ``n // 5``: the
    chat model's own cost per token."""
    rate = 0.0
    for k in (max(1, n // 5), n):
        t0 = perf_counter()
        async for _chunk in model.astream([HumanMessage(content=str(k))]):
            pass
        rate = k / (perf_counter() - t0)
    return rate


# -- chain and fan-out -----------------------------------------------------------------------
class ChainState(TypedDict):
    x: int


async def inc(state: ChainState) -> dict[str, Any]:
    return {"x": state["x"] + 1}


def chain_run(n: int) -> Run:
    builder = StateGraph(ChainState)
    for i in range(n):
        builder.add_node(f"n{i}", inc)
    builder.add_edge(START, "n0")
    for i in range(n - 1):
        builder.add_edge(f"n{i}", f"n{i + 1}")
    builder.add_edge(f"n{n - 1}", END)
    app = builder.compile()
    limit = default_recursion_limit()
    config: RunnableConfig | None = None
    if n + 1 > limit:
        config = {"recursion_limit": n + 10}
    PEER.facts["recursion_limit"] = (
        f"recursion_limit raised to {n + 10} (the default, {limit}, is below the chain)"
        if config
        else f"no recursion_limit passed: the default ({limit} super-steps) covers the chain"
    )

    async def once(execs: int) -> tuple[float, str | None]:
        problem = None
        t0 = perf_counter()
        for _ in range(execs):
            out = await app.ainvoke({"x": 0}, config)
            if out["x"] != n:
                problem = f"chain of {n} returned x={out['x']}"
        return perf_counter() - t0, problem

    return once


class FanState(TypedDict, total=False):
    x: int
    parts: Annotated[list[int], operator.add]
    total: int


async def start(state: FanState) -> dict[str, Any]:
    return {"x": state["x"]}


async def join(state: FanState) -> dict[str, Any]:
    return {"total": sum(state["parts"])}


def fanout_run() -> Run:
    builder = StateGraph(FanState)
    builder.add_node("start", start)
    builder.add_edge(START, "start")
    names = [f"b{i}" for i in range(FANOUT)]
    for i, name in enumerate(names):

        async def part(state: FanState, _i: int = i) -> dict[str, Any]:
            return {"parts": [_i]}

        builder.add_node(name, part)
        builder.add_edge("start", name)
    builder.add_node("join", join)
    builder.add_edge(names, "join")
    builder.add_edge("join", END)
    app = builder.compile()

    async def once(execs: int) -> tuple[float, str | None]:
        problem = None
        t0 = perf_counter()
        for _ in range(execs):
            out = await app.ainvoke({"x": 0})
            if out.get("total") != FANOUT_TOTAL:
                problem = check_equal("total", out.get("total"), FANOUT_TOTAL)
        return perf_counter() - t0, problem

    return once


def build(args: argparse.Namespace) -> Run:
    if args.measure == "stream":
        if args.variant == "messages":
            run = messages_run()

            async def with_reference(n: int) -> tuple[float, str | None]:
                out = await run(n)
                # once, after the first full-size sample (outside its timed window); only
                # without telemetry, so the telemetry rows' span counts stay per graph run
                if n == args.size and args.telemetry == "off" and "model_alone" not in PEER.facts:
                    PEER.facts["model_alone"] = await model_alone(max(1, n // 2))
                return out

            return with_reference
        return custom_run()
    if args.measure == "chain":
        return chain_run(args.size)
    return fanout_run()


def instrument(tel: Telemetry) -> dict[str, Any]:
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    LangchainInstrumentor().instrument(
        tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider
    )
    return {
        "instrumentation": "LangchainInstrumentor().instrument(tracer_provider, meter_provider)"
    }


PEER.instrument = instrument

if __name__ == "__main__":
    raise SystemExit(main(PEER))
