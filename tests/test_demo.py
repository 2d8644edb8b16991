"""
The ``graphai`` command (``python -m graphai``): the demo runs, streams node boundaries, prints
the trace waterfall and the metrics summary, serves ``/metrics`` and handles its options.

Subprocess tests use ``--speed`` so a run takes well under a second; every wait is bounded.
"""

from __future__ import annotations

import base64
import io
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphai import _demo
from graphai.graph import BranchEdge, JoinEdge

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_")) and k != "NO_COLOR"
    }
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def graphai_cmd(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphai", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(**env),
        cwd=ROOT,
    )


def _default_sigint() -> None:
    """In the child, before exec: SIGINT unblocked and at its default disposition, whatever the
    test process inherited or changed, so Python installs its KeyboardInterrupt handler."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Lines:
    """A running ``graphai`` whose stdout lines can be awaited with a deadline."""

    def __init__(self, *args: str, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphai", *args],
            preexec_fn=_default_sigint,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(**env),
            cwd=ROOT,
        )
        self.q: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                m = re.search(pattern, line)
                if m:
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no line matching {pattern!r} within {timeout}s:\n{''.join(self.seen)}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"graphai exited before printing {pattern!r}:\n{''.join(self.seen)}")
            self.seen.append(line)

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        rc = self.proc.wait(timeout)
        while True:
            try:
                line = self.q.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return rc, "".join(self.seen)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.pump.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def running() -> Iterator[list[Lines]]:
    procs: list[Lines] = []
    yield procs
    for p in procs:
        p.kill()


# -- the acceptance run --------------------------------------------------------------------------
def test_demo_multi_run() -> None:
    t0 = time.monotonic()
    proc = graphai_cmd("--speed", "20", "--runs", "3", "--concurrency", "2", "--prometheus-addr", "127.0.0.1:0")
    wall = time.monotonic() - t0
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert wall < 30
    # node boundaries, per run
    for run in (1, 2, 3):
        assert re.search(rf"run {run}\s+▶ plan", out), out
        assert re.search(rf"run {run}\s+■ synthesize .*tok", out), out
        assert re.search(rf"run {run}\s+✓ ", out), out
    assert "▶ search_docs" in out and "▶ lookup_account" in out  # the parallel tools
    assert "▶ audit_redact" in out and "■ audit_store" in out  # the detached branch
    assert "progress: 3/3 runs done" in out
    assert "Runs  3/3 ok" in out
    # trace waterfall
    assert re.search(r"^Trace [0-9a-f]{32}  first run · ok", out, re.M), out
    for span in ("invoke_workflow support-agent", "chat sim-llm-large", "execute_tool search_docs",
                 "execute_tool lookup_account", "audit_redact", "respond"):
        assert re.search(rf"^\s+{re.escape(span)}\s+\d+\.\d{{3}}s [·░█]+ ", out, re.M), span
    assert "waiting for the first token" in out
    # metrics summary, scraped from the live endpoint
    assert re.search(r"^Metrics  \(scraped from http://127\.0\.0\.1:\d+/metrics", out, re.M)
    assert re.search(r"graph support-agent  runs 3 ok", out)
    assert re.search(r"^  synthesize\s+llm\s+3 ", out, re.M)
    assert re.search(r"^  search_docs\s+tool\s+\d ", out, re.M)
    assert proc.stderr == ""


def test_help_lists_every_option() -> None:
    proc = graphai_cmd("--help")
    assert proc.returncode == 0
    options = [
        opt
        for action in _demo.build_parser()._actions
        for opt in action.option_strings
        if opt.startswith("--")
    ]
    assert set(options) >= {
        "--runs", "--concurrency", "--serve", "--otlp", "--prometheus-addr", "--no-telemetry",
        "--seed", "--speed", "--help",
    }
    for opt in options:
        assert opt in proc.stdout, opt
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in proc.stdout and "NO_COLOR" in proc.stdout


def test_single_run_streams_tokens_between_the_markers() -> None:
    proc = graphai_cmd("--speed", "50", "--prometheus-addr", "127.0.0.1:0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "query  I was charged twice for order #" in out
    start = out.index("▶ synthesize  llm sim-llm-large  <graphai:synthesize:start:>")
    end = out.index("■ synthesize ")
    assert "I'm sorry about the double charge" in out[start:end]
    assert re.search(r"■ synthesize  [\d.]+m?s · \d+ tok · ttft [\d.]+m?s · [\d.]+ tok/s  <graphai:synthesize:end:>", out)
    assert out.index("■ plan") < out.index("▶ search_docs") < start
    assert "◆ END" in out and "<graphai:END:>" in out
    assert "execute() returned after" in out
    assert "\x1b[" not in out  # not a TTY: no colours


def test_runs_are_reproducible_with_a_seed() -> None:
    a = graphai_cmd("--speed", "50", "--seed", "3", "--no-telemetry")
    b = graphai_cmd("--speed", "50", "--seed", "3", "--no-telemetry")
    assert a.returncode == b.returncode == 0

    def text(out: str) -> str:  # the streamed text, without the timings
        return "\n".join(line for line in out.splitlines() if line.startswith("    "))

    assert text(a.stdout) and text(a.stdout) == text(b.stdout)


def test_no_telemetry() -> None:
    proc = graphai_cmd("--speed", "50", "--runs", "2", "--no-telemetry")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "telemetry off" in proc.stdout
    assert "Trace " not in proc.stdout and "Metrics" not in proc.stdout
    assert "run 2   ■ synthesize" in proc.stdout


def test_colours_only_when_asked_and_no_color_wins() -> None:
    forced = graphai_cmd("--speed", "50", "--no-telemetry", "--color", "always")
    assert "\x1b[1;36m▶\x1b[0m" in forced.stdout
    overridden = graphai_cmd("--speed", "50", "--no-telemetry", "--color", "always", NO_COLOR="1")
    assert "\x1b[" in overridden.stdout  # an explicit --color always overrides NO_COLOR

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    os.environ.pop("NO_COLOR", None)
    assert _demo.color_wanted(Tty()) is True
    assert _demo.color_wanted(io.StringIO()) is False
    assert _demo.color_wanted(Tty(), "never") is False


def test_no_color_env_turns_colours_off(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("NO_COLOR", "1")
    assert _demo.color_wanted(Tty()) is False
    monkeypatch.setenv("NO_COLOR", "")  # empty means unset (no-color.org)
    monkeypatch.delenv("TERM", raising=False)
    assert _demo.color_wanted(Tty()) is True


def test_ascii_terminal_gets_ascii_glyphs() -> None:
    proc = graphai_cmd("--speed", "50", "--runs", "2", "--prometheus-addr", "127.0.0.1:0", PYTHONIOENCODING="ascii")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "> plan" in proc.stdout and "# synthesize" in proc.stdout
    proc.stdout.encode("ascii")


def test_busy_port_falls_back_to_a_free_one() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = graphai_cmd("--speed", "50", "--prometheus-addr", f"127.0.0.1:{port}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"127.0.0.1:{port} is busy" in proc.stdout
    m = re.search(r"metrics http://127\.0\.0\.1:(\d+)/metrics", proc.stdout)
    assert m and int(m.group(1)) != port
    assert "Metrics  (scraped from" in proc.stdout


def test_invalid_options_are_usage_errors() -> None:
    for args in (["--runs", "0"], ["--speed", "-1"], ["--prometheus-addr", "nope"], ["--concurrency", "x"]):
        proc = graphai_cmd(*args)
        assert proc.returncode == 2, args
        assert "usage: graphai" in proc.stderr


def test_serve_keeps_metrics_up_until_ctrl_c(running: list[Lines]) -> None:
    p = Lines("--speed", "50", "--runs", "2", "--serve", "--prometheus-addr", "127.0.0.1:0")
    running.append(p)
    url = p.wait_for(r"Serving (http://\S+/metrics) until Ctrl-C").group(1)
    time.sleep(0.2)
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = resp.read().decode()
    assert 'graphai_graph_duration_seconds_count{graphai_graph_name="support-agent"' in body
    assert "graphai_node_time_to_first_token_seconds_bucket" in body
    p.proc.send_signal(signal.SIGINT)
    rc, out = p.finish()
    assert rc == 0, out
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_ctrl_c_during_runs_exits_130(running: list[Lines]) -> None:
    p = Lines("--runs", "20", "--concurrency", "2", "--prometheus-addr", "127.0.0.1:0")
    running.append(p)
    p.wait_for(r"run 1\s+▶ plan")
    p.proc.send_signal(signal.SIGINT)
    rc, out = p.finish()
    assert rc == 130, out
    assert "interrupted" in out
    assert "Traceback" not in out


@pytest.mark.integration
def test_otlp_export_reaches_a_collector(otlp_sink: object) -> None:
    endpoint = otlp_sink.grpc_endpoint  # type: ignore[attr-defined]
    otlp_sink.reset()  # type: ignore[attr-defined]
    proc = graphai_cmd(
        "--speed", "50", "--runs", "2", "--prometheus-addr", "127.0.0.1:0", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Traces  2 sent over OTLP to {endpoint}" in proc.stdout
    assert "waiting for the first token" not in proc.stdout  # no waterfall with OTLP
    ids = re.findall(r"^  ([0-9a-f]{32})$", proc.stdout, re.M)
    assert len(ids) == 2
    names: set[str] = set()
    trace_ids: set[str] = set()
    services: set[str] = set()
    for req in otlp_sink.get("traces"):  # type: ignore[attr-defined]
        for rs in req["resourceSpans"]:
            for a in rs["resource"]["attributes"]:
                if a["key"] == "service.name":
                    services.add(a["value"]["stringValue"])
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    names.add(s["name"])
                    trace_ids.add(base64.b64decode(s["traceId"]).hex())
    assert {"invoke_workflow support-agent", "chat sim-llm-large", "execute_tool search_docs"} <= names
    assert set(ids) <= trace_ids
    assert services == {"graphai-demo"}
    assert otlp_sink.get("logs")  # type: ignore[attr-defined]


# -- in process ----------------------------------------------------------------------------------
def test_main_in_process() -> None:
    buf = io.StringIO()
    assert _demo.main(["--speed", "50", "--prometheus-addr", "127.0.0.1:0"], stdout=buf) == 0
    out = buf.getvalue()
    assert "■ synthesize" in out and "Trace " in out and "Metrics" in out


def test_graph_shape() -> None:
    g = _demo.build_graph(_demo.Sim(100))
    assert g.name == "support-agent"
    assert g.nodes["plan"].is_router
    joins = [e for e in g.edges if isinstance(e, JoinEdge)]
    assert [sorted(s.name for s in j.sources) for j in joins] == [["lookup_account", "search_docs"]]
    assert joins[0].destination.name == "synthesize"
    branches = [e for e in g.edges if isinstance(e, BranchEdge)]
    assert [(b.source.name, b.destination.name, b.wait) for b in branches] == [
        ("synthesize", "audit_redact", False)
    ]
    assert g.nodes["synthesize"].kind == "llm" and g.nodes["synthesize"].model == "sim-llm-large"


def test_tokenizer_and_inputs_are_deterministic() -> None:
    import random

    text = "Hello there, extraordinary world.\n\nSecond paragraph!"
    a = _demo.tokenize(text, random.Random(1))
    assert "".join(a) == text
    assert a == _demo.tokenize(text, random.Random(1))
    assert "\n\n" in a
    assert _demo.run_inputs(5, 4) == _demo.run_inputs(5, 4)
    assert _demo.run_inputs(5, 4)[0]["query"].startswith("I was charged twice")


def test_histogram_quantile_matches_prometheus() -> None:
    buckets = [(0.1, 0.0), (0.5, 5.0), (1.0, 10.0), (float("inf"), 10.0)]
    assert _demo.histogram_quantile(0.5, buckets) == pytest.approx(0.5)
    assert _demo.histogram_quantile(0.25, buckets) == pytest.approx(0.3)
    assert _demo.histogram_quantile(0.95, buckets) == pytest.approx(0.95)
    assert _demo.histogram_quantile(0.5, [(float("inf"), 0.0)]) is None
    assert _demo.histogram_quantile(0.99, [(1.0, 1.0), (float("inf"), 3.0)]) == 1.0


def test_output_cut_short_by_the_reader_is_not_an_error() -> None:
    """``graphai | head``: the demo stops writing quietly and still exits 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphai", "--speed", "50", "--runs", "2", "--prometheus-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    try:
        rc = proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert rc == 0, err
    assert "Traceback" not in err


def test_otel_sdk_disabled_runs_without_telemetry() -> None:
    proc = graphai_cmd("--speed", "50", OTEL_SDK_DISABLED="true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "telemetry off (OTEL_SDK_DISABLED=true)" in proc.stdout
    assert "Trace " not in proc.stdout and "■ synthesize" in proc.stdout
