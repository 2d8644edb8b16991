"""
``configure()`` in a parent, then ``os.fork()`` (gunicorn ``--preload``, multiprocessing
``fork``): each child gets its own ``service.instance.id`` and its own ``/metrics`` endpoint (a
port of the ``prometheus_ports`` range, or none with a warning), its graph runs still produce
spans and metrics, nothing deadlocks, and the parent's endpoint keeps serving the parent.

The scenario runs in a fresh interpreter (OpenTelemetry globals are set once per process, and a
pytest process has threads of its own); every wait in it is bounded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from tests._tools import free_port_range
from tests.telemetry._support import ROOT

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SCENARIO = textwrap.dedent(
    r"""
    import asyncio, json, logging, os, re, select, sys, time, urllib.request
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import graphai.telemetry as telemetry
    from graphai import Callback, Graph, node

    BASE, PORTS, CHILDREN = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    handle = telemetry.configure(
        service_name="forky", prometheus_addr=f"127.0.0.1:{BASE}", prometheus_ports=PORTS
    )
    spans = InMemorySpanExporter()
    handle.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))

    @node(start=True, stream=True, kind="llm", model="m")
    async def talk(query, callback):
        for t in "abc":
            await callback.acall(t)
        return {"answer": "abc"}

    @node(end=True)
    async def done(answer):
        return {"answer": answer}

    graph = Graph(name="forky")
    graph.add_node(talk).add_node(done).add_edge(talk, done).compile()

    def run():
        async def go():
            cb = Callback()
            async def drain():
                return [t async for t in cb.aiter()]
            await asyncio.wait_for(
                asyncio.gather(graph.execute({"query": "q"}, callback=cb), drain()), 10
            )
        asyncio.run(go())

    def scrape(addr):
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        runs = sum(float(m) for m in re.findall(
            r'^graphai_graph_duration_seconds_count\{[^}]*\} (\S+)$', text, re.M))
        ids = re.findall(r'^target_info\{.*service_instance_id="([^"]+)"', text, re.M)
        return runs, ids

    parent_addr = handle.prometheus_addr
    scrape(parent_addr)  # the parent's exporter has built its target_info before the fork
    release_r, release_w = os.pipe()
    children = []
    for _ in range(CHILDREN):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, wait for the parent's go, exit
            os.close(r)
            out = {"pid": os.getpid()}
            try:
                run()
                out["spans"] = [s.name for s in spans.get_finished_spans()]
                out["addr"] = handle.prometheus_addr
                if handle.prometheus_addr:
                    out["runs"], out["ids"] = scrape(handle.prometheus_addr)
            except BaseException as exc:
                out["error"] = repr(exc)
            os.write(w, json.dumps(out).encode())
            os.close(w)
            select.select([release_r], [], [], 20)
            out_ok = handle.shutdown(3)
            os._exit(0 if out_ok else 3)
        os.close(w)
        children.append((pid, r))

    results = []
    for pid, r in children:
        ready, _, _ = select.select([r], [], [], 20)
        data = b""
        if ready:
            while chunk := os.read(r, 65536):
                data += chunk
        results.append(json.loads(data) if data else {"pid": pid, "error": "no report in 20 s"})
    os.write(release_w, b"x" * CHILDREN)
    for res, (pid, _) in zip(results, children):
        deadline = time.monotonic() + 20
        while True:
            done_pid, status = os.waitpid(pid, os.WNOHANG)
            if done_pid:
                res["exit"] = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                res["exit"] = "killed after 20 s"
                break
            time.sleep(0.02)

    spans.clear()
    run()
    runs, ids = scrape(parent_addr)
    parent = {"pid": os.getpid(), "addr": parent_addr, "runs": runs, "ids": ids,
              "spans": [s.name for s in spans.get_finished_spans()]}
    print("RESULT " + json.dumps({"parent": parent, "children": results}), flush=True)
    ok = handle.shutdown(3)
    sys.exit(0 if ok else 4)
    """
)


def _scenario(base: int, ports: int, children: int) -> tuple[dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    env["PYTHONPATH"] = ROOT
    proc = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(base), str(ports), str(children)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=ROOT,
    )
    out = proc.stdout + proc.stderr
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line is not None, out[-4000:]
    return json.loads(line[len("RESULT ") :]), out


def _run_spans(names: list[str]) -> list[str]:
    return [n for n in names if n.startswith("invoke_workflow")]


def test_forked_children_get_their_own_endpoint_and_instance_id() -> None:
    base = free_port_range(3)
    result, out = _scenario(base, ports=3, children=2)
    host = socket.gethostname()
    parent, children = result["parent"], result["children"]
    assert parent["addr"] == f"127.0.0.1:{base}"
    addrs = set()
    for child in children:
        assert "error" not in child, child
        assert child["exit"] == 0, child
        # its own endpoint, on another port of the range, serving only its own run
        assert child["addr"] in {f"127.0.0.1:{base + 1}", f"127.0.0.1:{base + 2}"}, child
        addrs.add(child["addr"])
        assert child["runs"] == 1.0, child
        assert child["ids"] == [f"{host}-{child['pid']}"], child
        assert len(_run_spans(child["spans"])) == 1, child
    assert len(addrs) == 2, children
    # the parent is untouched: same endpoint, its own id, only its own run
    assert parent["runs"] == 1.0, parent
    assert parent["ids"] == [f"{host}-{parent['pid']}"], parent
    assert len(_run_spans(parent["spans"])) == 1, parent
    assert out.count("telemetry.prometheus_started") == 3, out[-3000:]
    assert out.count("after_fork") >= 2, out[-3000:]


def test_forked_child_without_a_free_port_warns_and_keeps_tracing() -> None:
    base = free_port_range(1)
    result, out = _scenario(base, ports=1, children=1)
    (child,) = result["children"]
    assert "error" not in child and child["exit"] == 0, child
    assert child["addr"] is None, child  # the parent holds the only port: no endpoint, logged
    assert len(_run_spans(child["spans"])) == 1, child
    assert "telemetry.prometheus_failed" in out and "Multi-worker servers" in out, out[-3000:]
    parent = result["parent"]
    assert parent["addr"] == f"127.0.0.1:{base}" and parent["runs"] == 1.0, parent


RETRYING_PARENT = textwrap.dedent(
    r"""
    import logging, os, select, socket, sys, time
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    import graphai.telemetry as telemetry

    PORT = int(sys.argv[1])
    holder = socket.socket()
    holder.bind(("127.0.0.1", PORT))
    holder.listen()
    handle = telemetry.configure(service_name="forky", prometheus_addr=f"127.0.0.1:{PORT}")
    assert handle.prometheus_addr is None  # taken: the parent retries in the background
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        holder.close()
        select.select([r], [], [], 10)  # the parent has stopped trying and let go of the port
        deadline = time.monotonic() + 5
        while handle.prometheus_addr is None and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"CHILD {handle.prometheus_addr}", flush=True)
        os._exit(0 if handle.shutdown(3) else 3)
    os.close(r)
    handle.shutdown(3)  # the parent's retries stop; the child's go on
    holder.close()
    os.write(w, b"x")
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def test_a_child_forked_while_the_parent_retries_keeps_retrying() -> None:
    """A parent whose ``configure()`` found the port taken forks (gunicorn ``--preload`` during
    a HUP): the child's copy of the handle retries too and takes the port once it is freed."""
    port = free_port_range(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    env["PYTHONPATH"] = ROOT
    proc = subprocess.run(
        [sys.executable, "-c", RETRYING_PARENT, str(port)],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"CHILD 127.0.0.1:{port}" in proc.stdout, out[-3000:]
    started = [ln for ln in out.splitlines() if "telemetry.prometheus_started" in ln]
    assert len(started) == 1 and "after_fork=True" in started[0], out[-3000:]
    assert "retried=True" in started[0], started
