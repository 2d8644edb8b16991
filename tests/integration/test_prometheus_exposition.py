"""
The ``/metrics`` endpoint ``configure()`` starts: contract series names and labels after a
real run, and an exposition that ``promtool check metrics`` accepts.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import graphai.telemetry as telemetry
from graphai import Callback, Graph, node
from graphai.telemetry import names as N
from graphai.telemetry.setup import TelemetryHandle
from tests._tools import require_tool

pytestmark = pytest.mark.integration


@node(start=True, stream=True, kind="llm", model="fake-model")
async def llm(query: str, callback: Any) -> dict[str, Any]:
    for t in ["a", "b", "c"]:
        await callback.acall(t)
        await asyncio.sleep(0.01)
    return {"answer": "abc"}


@node(end=True)
async def done(answer: str) -> dict[str, Any]:
    return {"answer": answer}


@pytest.fixture
def handle() -> Iterator[TelemetryHandle]:
    h = telemetry.configure(prometheus_addr="127.0.0.1:0", set_global=False, service_name="prom")
    try:
        yield h
    finally:
        assert h.shutdown(timeout_s=5)


async def _run_graph() -> None:
    graph = Graph(name="wire")
    graph.add_node(llm).add_node(done).add_edge(llm, done).compile()
    callback = Callback()

    async def drain() -> list[Any]:
        return [t async for t in callback.aiter()]

    result, _ = await asyncio.wait_for(
        asyncio.gather(graph.execute({"query": "q"}, callback=callback), drain()), timeout=10
    )
    assert result["answer"] == "abc"


def _scrape(addr: str) -> str:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def _series(text: str) -> dict[str, list[str]]:
    """Series name -> label sets (as text) of every sample line."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2) or "")
    return out


# Contract series (docs/telemetry.md "Metrics") recorded by one streaming llm node run.
HISTOGRAMS = [
    N.METRICS[name][4]
    for name in (
        N.GRAPH_DURATION,
        N.GRAPH_TTFT,
        N.NODE_DURATION,
        N.NODE_TTFT,
        N.NODE_TPOT_METRIC,
        N.NODE_MAX_GAP_METRIC,
        N.NODE_TOKEN_RATE,
        N.GENAI_OPERATION_DURATION,
        N.GENAI_TTFC,
    )
]
NODE_SERIES = [
    "graphai_node_duration_seconds_bucket",
    "graphai_node_time_to_first_token_seconds_bucket",
    "graphai_node_output_tokens_total",
]


class TestPrometheusExposition:
    """configure(prometheus_addr=...) serves the contract's series, and promtool accepts them."""

    async def test_contract_series_and_labels_after_a_run(self, handle: TelemetryHandle) -> None:
        assert handle.prometheus_addr is not None
        await _run_graph()
        series = _series(await asyncio.to_thread(_scrape, handle.prometheus_addr))
        for base in HISTOGRAMS:
            for suffix in ("_bucket", "_count", "_sum"):
                assert base + suffix in series, f"{base}{suffix} missing: {sorted(series)}"
        assert N.METRICS[N.NODE_TOKENS][4] in series
        for name in NODE_SERIES:
            for labels in series[name]:
                assert 'graphai_graph_name="wire"' in labels, (name, labels)
                assert "graphai_node_name=" in labels, (name, labels)
        assert any(
            'graphai_node_name="llm"' in ls for ls in series["graphai_node_output_tokens_total"]
        )
        for labels in series["graphai_graph_duration_seconds_count"]:
            assert 'graphai_graph_name="wire"' in labels
            assert 'graphai_run_outcome="ok"' in labels
        assert any('service_name="prom"' in ls for ls in series["target_info"])

    async def test_promtool_check_metrics_accepts_the_exposition(
        self, handle: TelemetryHandle
    ) -> None:
        promtool = require_tool(
            "promtool",
            "apt-get install -y --no-install-recommends prometheus",
        )
        assert handle.prometheus_addr is not None
        await _run_graph()
        text = await asyncio.to_thread(_scrape, handle.prometheus_addr)
        proc = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
