"""
graphai installed WITHOUT the ``[otel]`` extra (core dependencies only: ``opentelemetry-api``,
``structlog``) in a fresh venv: ``import graphai`` works, a streaming graph runs,
``graphai.telemetry.is_instrumented()`` answers, and ``graphai.telemetry.configure()`` fails
with an ``ImportError`` that names the extra.

Needs PyPI (the core dependencies and the build backend are downloaded): a network failure skips
the test with a message, except under ``CI=true``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._venv import PIP_TIMEOUT_S, RUN_TIMEOUT_S, make_venv, pip, py, snapshot

SCRIPT = r"""
import asyncio
import importlib.util
import json
import sys

assert importlib.util.find_spec("opentelemetry.sdk") is None, "the SDK is installed"

import graphai
import graphai.telemetry
from graphai import Callback, Graph, node

assert "opentelemetry.sdk" not in sys.modules


@node(start=True)
async def prep(query: str) -> dict:
    return {"query": query.strip()}


@node(end=True, stream=True, kind="llm", model="fake-model")
async def answer(query: str, callback) -> dict:
    for word in ["Hello", " ", "world"]:
        await callback.acall(word)
    return {"answer": "Hello world"}


async def main() -> tuple[dict, list[str]]:
    graph = Graph(name="no-otel").add_node(prep()).add_node(answer()).add_edge(prep, answer)
    cb = Callback()

    async def consume() -> list[str]:
        return [str(t) async for t in cb.aiter()]

    result, tokens = await asyncio.wait_for(
        asyncio.gather(graph.execute({"query": " hi "}, callback=cb), consume()), 10
    )
    return result, tokens


result, tokens = asyncio.run(main())
errors = {}
for what, call in {
    "configure": lambda: graphai.telemetry.configure(prometheus_addr=False),
    "TelemetryHandle": lambda: graphai.telemetry.TelemetryHandle,
}.items():
    try:
        call()
    except ImportError as exc:
        errors[what] = [type(exc).__name__, str(exc)]
    else:
        errors[what] = None
print(json.dumps({
    "graphai_file": graphai.__file__,
    "result": result,
    "tokens": tokens,
    "instrumented": graphai.telemetry.is_instrumented(),
    "errors": errors,
    "sdk_imported": "opentelemetry.sdk" in sys.modules,
}))
"""


@pytest.mark.slow
@pytest.mark.timeout(2 * PIP_TIMEOUT_S + 3 * RUN_TIMEOUT_S)
def test_import_and_run_without_the_otel_extra(tmp_path: Path) -> None:
    src = snapshot(tmp_path)
    python = make_venv(tmp_path)
    pip(python, "install", str(src), cwd=tmp_path)

    # the extra is really absent
    proc = py(python, "import opentelemetry.sdk", tmp_path)
    assert proc.returncode != 0, "opentelemetry.sdk is importable in the core-only venv"
    assert "ModuleNotFoundError" in proc.stderr, proc.stderr

    proc = py(python, SCRIPT, tmp_path)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(got["graphai_file"]).resolve().is_relative_to(python.parents[1].resolve()), got["graphai_file"]
    assert got["result"]["answer"] == "Hello world"
    assert [t for t in got["tokens"] if not t.startswith("<graphai:")] == ["Hello", " ", "world"]
    assert got["tokens"][-1] == "<graphai:END:>"
    assert got["instrumented"] is True
    assert got["sdk_imported"] is False
    for what in ("configure", "TelemetryHandle"):
        assert got["errors"][what] is not None, f"{what} did not raise ImportError"
        _, message = got["errors"][what]
        assert message == (
            "graphai.telemetry.configure() needs the [otel] extra: "
            'pip install "graphai-otel[otel]" (from an index) or pip install -e ".[otel]" '
            "(from a checkout) (missing: opentelemetry.sdk)"
        ), message
