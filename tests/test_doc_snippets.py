"""
Every fenced ``python`` and shell (``bash``/``sh``/``shell``/``console``) block of README.md and
docs/*.md runs as written.

Each block runs in a fresh subprocess from the repository root, with every ``OTEL_*`` and
``GRAPHAI_*`` variable removed from the environment (only what a fixture below declares is set)
and the running interpreter's ``bin`` directory first on ``PATH`` (the docs assume the venv is
active: ``python`` is the one graphai is installed in). Python blocks run with ``-W error``;
shell blocks with ``bash -eu -o pipefail``.

Fragments get small, declared fixtures in ``FIXTURES``, keyed by (file, the block's first line):
a prelude (the names a fragment uses but does not define: ``graph``, ``callback``, ``inp``...),
an epilogue (drives what the block only defines and checks the outcome), ``wrap_async`` (the
block has top-level ``await``: it runs inside ``async def`` + ``asyncio.run``), extra ``env``, or
a ``skip`` reason. A Python block without an entry runs as is. A shell block runs only when
its entry says ``shell_ok=True`` (checked to be safe and fast here): shell commands can install,
uninstall or start servers, so a new shell block without an entry fails until it is declared
one way or the other. Every skip is listed here with its reason, and an entry that matches no
block fails ``test_fixtures_match_blocks``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = ("python",)
SHELL = ("bash", "sh", "shell", "console")
TIMEOUT_S = 60
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)")


@dataclass(frozen=True)
class Block:
    file: str  # relative to the repository root
    line: int  # 1-based line of the block's first code line
    lang: str
    code: str

    @property
    def first_line(self) -> str:
        return next((ln.strip() for ln in self.code.splitlines() if ln.strip()), "")

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Fixture:
    prelude: str = ""
    epilogue: str = ""
    wrap_async: bool = False
    env: dict[str, str] = field(default_factory=dict)
    skip: str | None = None
    shell_ok: bool = False  # a shell block checked to be safe and fast to run here


def extract_blocks() -> list[Block]:
    blocks: list[Block] = []
    for path in DOC_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            indent, lang = m.group(1), m.group(2).lower()
            j = i + 1
            while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
                j += 1
            if lang in PYTHON + SHELL:
                body = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln
                                 for ln in lines[i + 1:j])
                blocks.append(Block(str(path.relative_to(ROOT)), i + 2, lang, body + "\n"))
            i = j + 1
    return blocks


# A small streaming graph for fragments that use `graph` without defining it.
GRAPH = """
import asyncio
from graphai import Callback, Graph, node

@node(start=True)
async def prep(query: str) -> dict:
    return {"query": query}

@node(end=True, stream=True)
async def answer(query: str, callback) -> dict:
    for word in ["Hello", " world"]:
        await asyncio.sleep(0.01)
        await callback.acall(word)
    return {"answer": "Hello world"}

graph = Graph(name="docs").add_node(prep()).add_node(answer()).add_edge(prep, answer)
"""

# configure() serves /metrics; port 0 keeps the blocks off the fixed default 9464.
FREE_PORT = {"GRAPHAI_PROMETHEUS_ADDR": "127.0.0.1:0"}

FIXTURES: dict[tuple[str, str], Fixture] = {
    # -- docs/callbacks.md -------------------------------------------------------------------
    ("docs/callbacks.md", "from graphai import node"): Fixture(
        prelude="""
class _FakeLLM:  # the block's "your LLM client"
    async def stream(self, query):
        for chunk in ["Hi", " ", query]:
            yield chunk

llm = _FakeLLM()
""",
        epilogue="""
import asyncio
from graphai import Graph

@node(start=True)
async def begin(query: str) -> dict:
    return {"query": query}

@node(end=True)
async def done(answer: str) -> dict:
    return {"answer": answer}

g = Graph().add_node(begin()).add_node(answer()).add_node(done())
g.add_edge(begin, answer).add_edge(answer, done)
result = asyncio.run(g.execute({"query": "there"}))
assert result["answer"] == "Hi there", result
""",
    ),
    ("docs/callbacks.md", "import asyncio"): Fixture(
        prelude=GRAPH,
        epilogue="asyncio.run(main())",
    ),
    ("docs/callbacks.md", "from graphai import parse_stream_token"): Fixture(
        prelude=GRAPH,
        epilogue="""
async def _check():
    cb = Callback()
    run = asyncio.create_task(graph.execute({"query": "hi"}, callback=cb))
    texts = await consume(cb)
    await run
    assert texts == {"answer": "Hello world"}, texts

asyncio.run(_check())
""",
    ),
    ("docs/callbacks.md", "from graphai import EventCallback, GraphEventType"): Fixture(
        prelude='request_id = "req-42"',
        epilogue='assert callback.identifier == "req-42"',
    ),
    ("docs/callbacks.md", "async def body():"): Fixture(
        prelude=GRAPH + "\nfrom graphai import EventCallback\ncallback = EventCallback()\n",
        epilogue="""
async def _check():
    run = asyncio.create_task(graph.execute({"query": "hi"}, callback=callback))
    frames = [frame async for frame in body()]
    await run
    assert frames and all(f.startswith(b"data: ") and f.endswith(b"\\n\\n") for f in frames)

asyncio.run(_check())
""",
    ),
    ("docs/callbacks.md", "cb = Callback()"): Fixture(
        prelude="from graphai import Callback",
        wrap_async=True,
    ),
    ("docs/callbacks.md", "from graphai import ConsumerGoneError"): Fixture(
        prelude=GRAPH + """
callback = Callback()
inp = {"query": "hi"}

def enough(token) -> bool:  # stop at the first item
    return True
""",
        wrap_async=True,
    ),
    # -- docs/getting-started.md ---------------------------------------------------------------
    ("docs/getting-started.md", "pip install -e '.[otel]'     # the engine + OpenTelemetry SDK, "
                                "OTLP and Prometheus exporters"): Fixture(
        skip="pip install: changes the environment and may need the network",
    ),
    ("docs/getting-started.md", "make demo    # creates .venv (pip install -e '.[otel,dev]') "
                                "and runs the `graphai` demo"): Fixture(
        skip="make demo / make test: installs into .venv and runs the whole test suite "
             "(this test included); minutes",
    ),
    ("docs/getting-started.md", ".venv/bin/graphai --runs 20 --concurrency 4 --speed 5      "
                                "# a batch, with a progress display"): Fixture(
        env=FREE_PORT, shell_ok=True,
    ),
    ("docs/getting-started.md", ".venv/bin/graphai --serve --speed 5 > /dev/null & pid=$!"): Fixture(
        skip="starts a server on the fixed port 9464, which other processes on a shared machine "
             "may hold (the demo would fall back to a free port and the curl would ask 9464)",
    ),
    ("docs/getting-started.md", "import graphai.telemetry"): Fixture(env=FREE_PORT),
    ("docs/getting-started.md", "docker compose -f docker-compose.otel.yml up -d"): Fixture(
        skip="needs Docker and pulls the stack's images",
    ),
    ("docs/getting-started.md", "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 "
                                "OTEL_METRIC_EXPORT_INTERVAL=5000 \\"): Fixture(
        skip="needs a real OpenTelemetry Collector on localhost:4317 (the compose stack); "
             "200 demo runs",
    ),
    # -- docs/differences.md ------------------------------------------------------------------
    ("docs/differences.md", "pip uninstall -y graphai-lib"): Fixture(
        skip="pip uninstall / pip install: changes the environment and needs PyPI",
    ),
    ("docs/differences.md", "pip install --force-reinstall --no-deps graphai-otel"): Fixture(
        skip="pip install --force-reinstall: changes the environment and needs PyPI",
    ),
    ("docs/differences.md", 'python -c "import graphai._dist as d; raise SystemExit(d.main())"'):
        Fixture(shell_ok=True),
    # -- docs/operations.md -------------------------------------------------------------------
    ("docs/operations.md", "make stack        # build (cached) and run tests/stack"): Fixture(
        skip="make stack: runs tests/stack, which make test runs anyway (this test included)",
    ),
    # -- docs/reliability.md -------------------------------------------------------------------
    ("docs/reliability.md", ".venv/bin/python -m pytest tests/reliability -q -p no:randomly"
                            "        # about 30 s on 2 cores"): Fixture(
        skip="runs the reliability suite (pytest inside pytest, 30 s or more per command)",
    ),
    ("docs/reliability.md", "# an hour-long style soak, a few minutes in practice"): Fixture(
        skip="soak, fuzz exploration and a 10 M-token benchmark: minutes each",
    ),
    # -- docs/telemetry.md ---------------------------------------------------------------------
    ("docs/telemetry.md", "import graphai.telemetry"): Fixture(
        prelude="""
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

tp, mp = TracerProvider(), MeterProvider()  # "your own providers"
""",
        epilogue="assert graphai.telemetry.is_instrumented()",
        env=FREE_PORT,
    ),
    ("docs/telemetry.md", "handle = graphai.telemetry.configure()"): Fixture(
        prelude="import graphai.telemetry",
        epilogue="""
import structlog
structlog.get_logger("docs").info("hello")
handle.shutdown()
""",
        env=FREE_PORT,
    ),
    ("docs/telemetry.md", "import asyncio"): Fixture(
        epilogue="asyncio.run(test_helpdesk())",
    ),
}

BLOCKS = extract_blocks()


def _fixture(block: Block) -> Fixture:
    return FIXTURES.get((block.file, block.first_line), Fixture())


def _python_source(block: Block, fx: Fixture) -> str:
    body = block.code
    if fx.wrap_async:
        body = (
            "import asyncio\n\nasync def _doc_main():\n"
            + textwrap.indent(body, "    ")
            + "\nasyncio.run(_doc_main())\n"
        )
    return "\n".join((textwrap.dedent(fx.prelude), body, textwrap.dedent(fx.epilogue)))


def _env(fx: Fixture) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env.update(fx.env)
    return env


def test_blocks_found() -> None:
    langs = {b.lang for b in BLOCKS}
    assert "python" in langs and "bash" in langs, langs
    assert len(BLOCKS) >= 15, [b.id for b in BLOCKS]


def test_fixtures_match_blocks() -> None:
    """Every entry names exactly one block (a stale or ambiguous entry fails here)."""
    for file, first in FIXTURES:
        hits = [b.id for b in BLOCKS if (b.file, b.first_line) == (file, first)]
        assert len(hits) == 1, f"fixture ({file!r}, {first!r}) matches {hits or 'no block'}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_doc_block_runs(block: Block) -> None:
    fx = _fixture(block)
    if fx.skip:
        pytest.skip(f"{block.id}: {fx.skip}")
    if block.lang in PYTHON:
        cmd = [sys.executable, "-W", "error", "-c", _python_source(block, fx)]
    else:
        assert fx.shell_ok, (
            f"{block.id}: undeclared {block.lang} block {block.first_line!r}: add a FIXTURES "
            "entry, shell_ok=True if it is safe and fast to run here, else skip='reason'"
        )
        code = block.code
        if block.lang == "console":  # commands are the "$ " lines; the rest is their output
            code = "\n".join(ln[2:] for ln in code.splitlines() if ln.startswith("$ ")) + "\n"
        cmd = ["bash", "-eu", "-o", "pipefail", "-c", code]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT, env=_env(fx)
    )
    assert proc.returncode == 0, (
        f"{block.id} ({block.lang}) exited {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
    )
