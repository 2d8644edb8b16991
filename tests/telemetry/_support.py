"""Helpers shared by the ``tests/telemetry`` modules: graphs to run, ways to run them with a
consumer of the stream, a fresh interpreter for what touches process globals, and the
``configure()`` helpers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import urllib.request
from typing import Any

from graphai import Callback, Graph, node
from graphai.telemetry import names as N
from graphai.telemetry.setup import TelemetryHandle, configure
from tests._otel import Signals
from tests._stream import run_with_consumer as _run_with_consumer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


BAD_GRAPHAI = [
    ("GRAPHAI_TOKEN_EVENTS", "bogus", "'capped'"),
    ("GRAPHAI_STALL_AFTER_S", "abc", "10.0"),
    ("GRAPHAI_TELEMETRY", "maybe", "'on'"),
    ("GRAPHAI_PROMETHEUS_ADDR", "nope", "'127.0.0.1:9464'"),
    ("GRAPHAI_CAPTURE_CONTENT", "perhaps", "False"),
    ("GRAPHAI_TOKEN_EVENTS_MAX", "many", "100"),
    ("GRAPHAI_CAPTURE_MAX_CHARS", "0", "4096"),
    ("GRAPHAI_METRICS_LABEL_LIMIT", "-3", "256"),
    ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "sometimes", "False"),
]


def run_py(*parts: str, timeout: float = 60, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run the (dedented, joined) code ``parts`` in a fresh interpreter under ``-W error``,
    with a clean OTEL_*/GRAPHAI_* environment plus ``environ``."""
    code = "\n".join(textwrap.dedent(p) for p in parts)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    child_env.update(environ)
    child_env["PYTHONPATH"] = ROOT
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def local(made: list[TelemetryHandle], **kw: Any) -> TelemetryHandle:
    kw.setdefault("set_global", False)
    kw.setdefault("prometheus_addr", False)
    h = configure(**kw)
    made.append(h)
    return h


@node(start=True, stream=True, kind="llm", model="fake-model")
async def llm(query: str, callback: Any) -> dict[str, Any]:
    for t in ["a", "b", "c"]:
        await callback.acall(t)
        await asyncio.sleep(0.001)
    return {"answer": "abc"}


@node(end=True)
async def done(answer: str) -> dict[str, Any]:
    return {"answer": answer}


async def run_graph() -> dict[str, Any]:
    graph = Graph(name="setup")
    graph.add_node(llm).add_node(done).add_edge(llm, done).compile()
    cb = Callback()

    async def drain() -> list[Any]:
        return [t async for t in cb.aiter()]

    result, _ = await asyncio.wait_for(
        asyncio.gather(graph.execute({"query": "q"}, callback=cb), drain()), timeout=10
    )
    return result


def scrape(addr: str) -> str:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=3) as resp:
        return str(resp.read().decode())


async def execute_and_drain(graph: Graph, payload: dict, cb: Callback | None = None) -> tuple[dict, list]:
    """(result, tokens): ``execute()`` and a consumer of its stream run together (10 s bound)."""
    cb = cb or Callback()

    async def consume() -> list:
        return [t async for t in cb.aiter()]

    res, toks = await asyncio.wait_for(asyncio.gather(graph.execute(payload, callback=cb), consume()), 10)
    return res, toks


def linear_graph() -> Graph:
    @node(start=True)
    async def prep(q: str) -> dict:
        return {"q": q.upper()}

    @node(stream=True, kind="llm", model="fake-1")
    async def llm(q: str, callback) -> dict:
        await asyncio.sleep(0.05)
        for t in ("a", "bb", "ccc"):
            await callback.acall(t)
            await asyncio.sleep(0.01)
        return {"answer": "abbccc"}

    @node(end=True)
    async def done(answer: str) -> dict:
        return {"len": len(answer)}

    g = Graph(name="lin").add_node(prep()).add_node(llm()).add_node(done())
    return g.add_edge(prep, llm).add_edge(llm, done)


async def run_with_consumer(g: Graph, inp: dict[str, Any]) -> tuple[Any, list[Any]]:
    """(result, consumer items); execute()'s exception is raised after the stream ended."""
    result, error, items = await _run_with_consumer(g, inp)
    if error is not None:
        raise error
    return result, items


def _active(sig: Signals, node_name: str) -> float:
    pts = [p for p in sig.points(N.NODE_ACTIVE) if p.attributes.get(N.NODE_NAME) == node_name]
    return sum(p.value for p in pts)


def _streaming_graph() -> Graph:
    @node(start=True, stream=True)
    async def speak(callback: Any, q: Any) -> dict[str, Any]:
        for t in ("a", "bb", "ccc"):
            await callback.acall(t)
        return {"said": 3}

    @node(end=True)
    async def done(said: int) -> dict[str, Any]:
        return {"total": said}

    return Graph(name="speaker").add_node(speak).add_node(done).add_edge(speak, done).compile()


EXPECTED_TOKENS = [
    "<graphai:speak:start:>",
    "<graphai:speak:>",
    "a",
    "bb",
    "ccc",
    "<graphai:speak:end:>",
    "<graphai:END:>",
]
