"""Run one small graphai graph with OTLP export to a Collector, then flush and exit.

usage: python _run_graph.py OTLP_GRPC_ENDPOINT SERVICE_NAME GRAPH_NAME
Prints one JSON line: the graph's result.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import graphai.telemetry
from graphai import Graph, node


@node(start=True)
async def prepare(question: str) -> dict[str, Any]:
    return {"question": question.strip() + "?"}


@node(end=True)
async def answer(question: str) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"answer": f"echo: {question}"}


def main() -> None:
    endpoint, service, graph_name = sys.argv[1:4]
    handle = graphai.telemetry.configure(
        service_name=service, otlp_endpoint=endpoint, prometheus_addr=False
    )
    try:
        graph = Graph(name=graph_name)
        graph.add_node(prepare()).add_node(answer()).add_edge(prepare, answer).compile()
        result = asyncio.run(graph.execute({"question": "what is graphai"}))
        print(json.dumps(result, default=str), flush=True)
    finally:
        handle.shutdown()


if __name__ == "__main__":
    main()
