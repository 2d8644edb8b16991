"""
Every file in ``examples/`` runs and does what its docstring says.

Script examples run as subprocesses (bounded); ``fastapi_sse.py`` is imported and driven in
process: over ``httpx.ASGITransport`` for framing and trace nesting, and over a raw ASGI
``receive``/``send`` pair for client disconnects (``ASGITransport`` buffers whole responses, so
it cannot disconnect mid-stream).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import graphai.telemetry
from graphai import parse_stream_token

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RUN_TIMEOUT = 60


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "OPENAI_", "GRAPHAI_")) and k != "NO_COLOR"
    }
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def run_example(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=_env(**env),
        cwd=ROOT,
    )


def load(name: str) -> ModuleType:
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_every_example_is_tested() -> None:
    tested = {"quickstart.py", "stream_consumer.py", "openai_stream.py", "fastapi_sse.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


# -- scripts -------------------------------------------------------------------------------------
def test_quickstart() -> None:
    proc = run_example("quickstart.py")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["<graphai:answer:start:>", "<graphai:answer:>"]
    assert "graphai runs async nodes as a graph and streams tokens." in lines
    assert "<graphai:answer:end:>" in lines and "<graphai:END:>" in lines
    assert "'question': 'what is graphai?'" in proc.stdout


def test_stream_consumer() -> None:
    proc = run_example("stream_consumer.py")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "--- outline ---\n1. What it is\n2. Why it matters" in out
    assert "--- draft ---\nGraphai keeps each node's text apart." in out
    assert "--- end of stream ---" in out
    assert "[support|" not in out  # the custom-format markers were all recognised


async def test_stream_consumer_groups_by_node_with_a_custom_format() -> None:
    mod = load("stream_consumer")
    cb = mod.Callback(identifier="x", special_token_format="<<{identifier}/{token}/{params}>>")
    run = asyncio.ensure_future(mod.graph.execute({"topic": "t"}, callback=cb))
    texts = await asyncio.wait_for(mod.consume(cb, echo=False), 10)
    await asyncio.wait_for(run, 10)
    assert texts == {"outline": "1. What it is\n2. Why it matters", "draft": "T keeps each node's text apart."}


def test_openai_stream_without_key_exits_0() -> None:
    proc = run_example("openai_stream.py")
    assert proc.returncode == 0, proc.stderr
    assert "OPENAI_API_KEY is not set" in proc.stdout


FAKE_OPENAI = textwrap.dedent(
    """
    import asyncio
    from types import SimpleNamespace

    def _chunk(text):
        choices = [] if text is None else [SimpleNamespace(delta=SimpleNamespace(content=text))]
        return SimpleNamespace(choices=choices)

    class _Stream:
        def __init__(self, parts):
            self.parts = parts

        def __aiter__(self):
            return self._gen()

        async def _gen(self):
            for p in self.parts:
                await asyncio.sleep(0.005)
                yield _chunk(p)

    class _Completions:
        async def create(self, *, model, messages, stream):
            assert stream is True and messages[-1]["role"] == "user"
            return _Stream(["Hello", "", " from", " a fake", " model.", None])

    class AsyncOpenAI:
        def __init__(self, **kwargs):
            self.chat = SimpleNamespace(completions=_Completions())
    """
)


def test_openai_stream_runs_the_node_against_an_openai_compatible_client(tmp_path: Path) -> None:
    """The real node code, with a stand-in ``openai`` package (no network)."""
    pkg = tmp_path / "openai"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(FAKE_OPENAI)
    proc = run_example(
        "openai_stream.py",
        "say hi",
        OPENAI_API_KEY="test-key",
        OPENAI_MODEL="fake-1",
        PYTHONPATH=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Hello from a fake model." in proc.stdout
    assert "(24 characters)" in proc.stdout
    assert "chat fake-1: time to first chunk" in proc.stdout
    assert "4 chunks" in proc.stdout


# -- FastAPI + SSE -------------------------------------------------------------------------------
@pytest.fixture
def sse() -> ModuleType:
    return load("fastapi_sse")


@pytest.fixture
def traced() -> Iterator[InMemorySpanExporter]:
    """Explicit providers for graphai and the FastAPI instrumentation (never the globals)."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    graphai.telemetry.instrument(tracer_provider=tp)
    exporter.tp = tp  # type: ignore[attr-defined]
    yield exporter
    graphai.telemetry.instrument()
    tp.shutdown()


def test_sse_frame_splits_lines(sse: ModuleType) -> None:
    assert sse.sse_frame("hi") == b"data: hi\n\n"
    assert sse.sse_frame("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert sse.sse_frame("") == b"data: \n\n"
    assert sse.sse_frame("x", event="error") == b"event: error\ndata: x\n\n"
    assert sse.parse_sse("data: a\ndata: b\n\nevent: e\ndata: \n\n") == [(None, "a\nb"), ("e", "")]


async def _post(app: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.wait_for(client.post(path, json=body), 10)


async def test_sse_string_stream(sse: ModuleType) -> None:
    resp = await _post(sse.create_app(), "/stream", {"query": "refund?", "delay": 0})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["cache-control"] == "no-cache"
    body = resp.text
    assert body.endswith("\n\n")
    tokens = [data for _event, data in sse.parse_sse(body)]
    items = [parse_stream_token(t) for t in tokens]
    assert [(i.kind, i.node) for i in items[:2]] == [("start", "answer"), ("node", "answer")]
    assert [(i.kind, i.node) for i in items[-2:]] == [("end", "answer"), ("END", None)]
    content = "".join(i.text for i in items if i.kind == "token")
    assert content.startswith("Refunds go back to the original payment method (see refund-policy).")
    assert "\n\n```bash\ncurl -X POST /refunds\n```\n" in content  # the multi-line token survived
    assert "data: \ndata: ```bash\ndata: curl -X POST /refunds\ndata: ```\ndata: \n\n" in body


async def test_sse_event_stream_uses_graph_event_encode(sse: ModuleType) -> None:
    resp = await _post(sse.create_app(), "/events", {"query": "refund?", "delay": 0})
    assert resp.status_code == 200
    blocks = [b for b in resp.text.split("\n\n") if b]
    assert all(b.startswith("data: {") and "\n" not in b for b in blocks)
    events = [json.loads(b[len("data: ") :]) for b in blocks]
    assert [e["type"] for e in events[:1] + events[-2:]] == ["start_node", "end_node", "end"]
    assert events[0]["token"] == "answer"
    assert len({e["identifier"] for e in events}) == 1
    content = "".join(e["token"] for e in events if e["type"] == "callback")
    assert "```bash\ncurl -X POST /refunds\n```" in content


def _spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(exporter.get_finished_spans())


async def test_run_span_is_a_child_of_the_http_request_span(
    sse: ModuleType, traced: InMemorySpanExporter
) -> None:
    app = sse.create_app(tracer_provider=traced.tp)  # type: ignore[attr-defined]
    resp = await _post(app, "/stream", {"query": "refund?", "delay": 0})
    assert resp.status_code == 200
    spans = _spans(traced)
    server = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(server) == 1, [s.name for s in spans]
    run = next(s for s in spans if s.name == "invoke_workflow sse-demo")
    assert run.parent is not None and run.parent.span_id == server[0].context.span_id
    assert run.context.trace_id == server[0].context.trace_id
    nodes = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == run.context.span_id}
    assert set(nodes) == {"retrieve", "chat demo-model"}
    assert nodes["chat demo-model"].attributes["graphai.node.output.tokens"] == 12
    assert run.attributes["graphai.run.outcome"] == "ok"


async def _drive_until_disconnect(app: Any, path: str, body: dict[str, Any], chunks_before: int, *, spec: str) -> list[bytes]:
    """Call the ASGI app as a server would; the client goes away after ``chunks_before`` body
    chunks: by an ``http.disconnect`` message (ASGI spec < 2.4) or by ``send`` raising
    ``OSError`` (spec 2.4, as uvicorn does)."""
    received: list[bytes] = []
    gone = asyncio.Event()
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if gone.is_set() and spec == "2.4":
            raise OSError("client disconnected")
        if message["type"] == "http.response.body" and message.get("body"):
            received.append(message["body"])
            if len(received) >= chunks_before:
                gone.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }
    with pytest.raises(Exception) if spec == "2.4" else _nothing():
        await asyncio.wait_for(app(scope, receive, send), 10)
    return received


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
async def test_client_disconnect_cancels_the_run(
    sse: ModuleType, traced: InMemorySpanExporter, spec: str
) -> None:
    app = sse.create_app(tracer_provider=traced.tp)  # type: ignore[attr-defined]
    received = await _drive_until_disconnect(app, "/stream", {"query": "q", "delay": 0.05}, 4, spec=spec)
    assert 4 <= len(received) < 10

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        names = {s.name for s in _spans(traced)}
        if "invoke_workflow sse-demo" in names and "chat demo-model" in names:
            break
        await asyncio.sleep(0.02)
    spans = {s.name: s for s in _spans(traced)}
    llm, run = spans["chat demo-model"], spans["invoke_workflow sse-demo"]
    assert llm.attributes["graphai.node.outcome"] == "cancelled"
    assert run.attributes["graphai.run.outcome"] == "cancelled"
    assert llm.attributes["graphai.node.output.tokens"] < 12
    for s in (llm, run):
        assert s.status.status_code is not StatusCode.ERROR
        assert "error.type" not in (s.attributes or {})
    assert spans["retrieve"].attributes["graphai.node.outcome"] == "ok"


def test_fastapi_example_main_without_uvicorn_exits_0(sse: ModuleType) -> None:
    if importlib.util.find_spec("uvicorn") is not None:
        pytest.skip("uvicorn is installed: main() would serve forever")
    assert sse.main() == 0


def test_getting_started_quickstart_snippet(tmp_path: Path) -> None:
    """The quickstart in docs/getting-started.md runs and prints what the page shows."""
    doc = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Your first graph") : doc.index("## Turn on telemetry")]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    code = next(body for lang, body in blocks if lang == "python")
    shown = next(body for lang, body in blocks if lang == "")
    script = tmp_path / "snippet.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=RUN_TIMEOUT, env=_env(), cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == shown
    assert proc.stdout == run_example("quickstart.py").stdout
