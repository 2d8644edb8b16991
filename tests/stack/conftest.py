"""
Fixtures for tests/stack: the binaries deploy/build-stack.sh builds, local variants of
deploy/otel-collector.yaml and deploy/jaeger.yaml, and the Collector, Jaeger v2 and Debian's
Prometheus as running processes.

The binaries' paths come from ``deploy/build-stack.sh --paths`` (the script owns the versions
hash). A binary that is not built skips its tests with one line naming the path and
``make stack``.

Every process listens on 127.0.0.1 free ports, logs to a file in the test's tmp dir (appended
across restarts), is polled for readiness with a bound and is stopped (TERM, then KILL) in
``finally``. A :class:`Service` can be stopped and started again on the same ports (the fault
tests).
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._tools import free_port, poll, require_tool
from tests.integration.prom_fixtures import Prometheus

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "deploy" / "build-stack.sh"
COLLECTOR_CONFIG = ROOT / "deploy" / "otel-collector.yaml"
JAEGER_CONFIG = ROOT / "deploy" / "jaeger.yaml"
COMPOSE_FILE = ROOT / "docker-compose.otel.yml"

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# Test-speed knobs, the only values the local variants change besides listen addresses (like
# dashboards/alerts/graphai-alerts.fast-test.yml): span metrics flushed every second instead
# of 15 s, and Jaeger's tail-sampling decision after 2 s instead of 30 s (every run here ends
# within 2 s of its first span).
SPAN_METRICS_FLUSH = "1s"
DECISION_WAIT = "2s"


# -- binaries ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack_paths() -> dict[str, Path]:
    try:
        out = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--paths"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"deploy/build-stack.sh --paths failed ({exc}); is Go on PATH?")
    return {k: Path(v) for k, v in (line.split("=", 1) for line in out.splitlines() if "=" in line)}


def _binary(paths: dict[str, Path], key: str, what: str) -> Path:
    path = paths[key]
    if not path.is_file():
        pytest.skip(f"{what} not built: run `make stack` (expected {path.relative_to(ROOT)})")
    return path


@pytest.fixture(scope="session")
def otelcol_bin(stack_paths: dict[str, Path]) -> Path:
    return _binary(stack_paths, "OTELCOL", "otelcol-graphai")


@pytest.fixture(scope="session")
def jaeger_bin(stack_paths: dict[str, Path]) -> Path:
    return _binary(stack_paths, "JAEGER", "jaeger")


# -- the shipped configs with local ports -----------------------------------------------------------

_ENDPOINT = re.compile(r"^(?P<host>[A-Za-z0-9_.-]+):(?P<port>\d+)$")


def _localize(cfg: Any, by_port: Mapping[str, str], special: Mapping[str, str], name: str) -> Any:
    """Every ``*.endpoint`` of ``cfg``: ``special[path]`` if given, else the 0.0.0.0 listen
    address mapped by its port. An endpoint this does not know fails the test, so a new one in
    the file is not missed."""

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str) and path.endswith(".endpoint"):
            if path in special:
                return special[path]
            m = _ENDPOINT.match(node)
            if m is None or m["host"] != "0.0.0.0" or m["port"] not in by_port:
                pytest.fail(f"{name}: unknown endpoint {path} = {node!r}; "
                            "map it in tests/stack/conftest.py")
            return by_port[m["port"]]
        return node

    return walk(cfg, "")


def _local_telemetry(cfg: dict[str, Any], port: int, default: int) -> None:
    readers = cfg["service"]["telemetry"]["metrics"]["readers"]
    prom = readers[0]["pull"]["exporter"]["prometheus"]
    assert len(readers) == 1 and prom["port"] == default, readers
    prom.update(host="127.0.0.1", port=port)


@dataclass
class CollectorPorts:
    otlp_grpc: int
    otlp_http: int
    health: int
    prometheus: int  # the prometheus exporter (graphai's series and the span metrics)
    telemetry: int  # the Collector's own metrics

    @classmethod
    def free(cls) -> CollectorPorts:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


def load_collector_config() -> dict[str, Any]:
    return yaml.safe_load(COLLECTOR_CONFIG.read_text())


def local_collector_config(ports: CollectorPorts, jaeger_otlp: str) -> dict[str, Any]:
    """deploy/otel-collector.yaml with every listen address on 127.0.0.1 free ports, the Jaeger
    exporter pointed at ``jaeger_otlp`` (``host:port``) and span metrics flushed every
    :data:`SPAN_METRICS_FLUSH`; nothing else changes."""
    cfg = copy.deepcopy(load_collector_config())
    jaeger_exporters = [k for k in cfg["exporters"] if k.split("/")[0] in ("otlp", "otlp_grpc")]
    assert jaeger_exporters == ["otlp_grpc/jaeger"], jaeger_exporters
    by_port = {  # the compose stack's ports, as the file names them
        "4317": f"127.0.0.1:{ports.otlp_grpc}",
        "4318": f"127.0.0.1:{ports.otlp_http}",
        "13133": f"127.0.0.1:{ports.health}",
        "8889": f"127.0.0.1:{ports.prometheus}",
    }
    special = {".exporters.otlp_grpc/jaeger.endpoint": jaeger_otlp}
    cfg = _localize(cfg, by_port, special, COLLECTOR_CONFIG.name)
    _local_telemetry(cfg, ports.telemetry, 8888)
    cfg["connectors"]["span_metrics"]["metrics_flush_interval"] = SPAN_METRICS_FLUSH
    return dict(cfg)


@dataclass
class JaegerPorts:
    otlp_grpc: int
    otlp_http: int
    query_http: int
    query_grpc: int
    health: int
    telemetry: int

    @classmethod
    def free(cls) -> JaegerPorts:
        return cls(*(free_port() for _ in range(6)))


def load_jaeger_config() -> dict[str, Any]:
    return yaml.safe_load(JAEGER_CONFIG.read_text())


def policy(cfg: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The tail-sampling policy ``name`` (the config's own dict, not a copy)."""
    (found,) = [p for p in cfg["processors"]["tail_sampling"]["policies"] if p["name"] == name]
    assert isinstance(found, dict)
    return found


def local_jaeger_config(ports: JaegerPorts, keep_percent: float | None = None) -> dict[str, Any]:
    """deploy/jaeger.yaml with every listen address on 127.0.0.1 free ports and the tail-sampling
    decision after :data:`DECISION_WAIT`; ``keep_percent`` replaces the probabilistic policy's
    percentage (100: every trace is stored, for tests about delivery, not sampling)."""
    cfg = copy.deepcopy(load_jaeger_config())
    by_port = {
        "4317": f"127.0.0.1:{ports.otlp_grpc}",
        "4318": f"127.0.0.1:{ports.otlp_http}",
        "16686": f"127.0.0.1:{ports.query_http}",
        "16685": f"127.0.0.1:{ports.query_grpc}",
        "13133": f"127.0.0.1:{ports.health}",
    }
    cfg = _localize(cfg, by_port, {}, JAEGER_CONFIG.name)
    _local_telemetry(cfg, ports.telemetry, 8888)
    cfg["processors"]["tail_sampling"]["decision_wait"] = DECISION_WAIT
    if keep_percent is not None:
        policy(cfg, "sample-rest")["probabilistic"]["sampling_percentage"] = keep_percent
    return dict(cfg)


# -- processes -----------------------------------------------------------------------------------


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body); an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, bytes(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, bytes(err.read())


def stop(proc: subprocess.Popen[bytes]) -> float:
    """TERM, then KILL after :data:`STOP_TIMEOUT_S`; the seconds it took to exit."""
    t0 = time.monotonic()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
    return time.monotonic() - t0


@dataclass
class Service:
    """A server process that can be started, stopped and started again with the same argv
    (same config, same ports), its output appended to ``log``."""

    argv: list[str]
    log: Path
    ready_url: str
    what: str
    proc: subprocess.Popen[bytes] | None = None
    stop_s: list[float] = field(default_factory=list)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.what} is running"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.log.parent
            )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"{self.what} exited with rc {proc.returncode}:\n{self.tail()}")
            return get(self.ready_url, timeout=2)[0] == 200

        poll(ready, READY_TIMEOUT_S, interval=0.2, what=f"{self.what} ready at {self.ready_url}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop_s.append(stop(self.proc))

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    @contextmanager
    def running(self) -> Iterator[Service]:
        try:
            self.start()
            yield self
        finally:
            self.stop()


@dataclass
class Jaeger:
    ports: JaegerPorts
    config: Path
    service: Service

    @property
    def log(self) -> Path:
        return self.service.log

    @property
    def otlp_grpc(self) -> str:  # host:port, for the Collector's exporter
        return f"127.0.0.1:{self.ports.otlp_grpc}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.query_http}"

    def traces(self, service: str, limit: int = 2000) -> list[dict[str, Any]]:
        """Every stored trace of ``service`` (Jaeger's query API)."""
        query = urllib.parse.urlencode({"service": service, "limit": limit, "lookback": "1h"})
        status, body = get(f"{self.query_url}/api/traces?{query}")
        assert status == 200, body[:500]
        return list(json.loads(body)["data"] or [])

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace with this id, or None when Jaeger answers 404."""
        status, body = get(f"{self.query_url}/api/traces/{trace_id}")
        if status == 404:
            return None
        assert status == 200, body[:500]
        (trace,) = json.loads(body)["data"]
        return dict(trace)


def jaeger_service(jaeger_bin: Path, tmp: Path, keep_percent: float | None = None) -> Jaeger:
    ports = JaegerPorts.free()
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "jaeger.local.yaml"
    cfg.write_text(yaml.safe_dump(local_jaeger_config(ports, keep_percent)))
    ready = f"http://127.0.0.1:{ports.query_http}/api/services"
    svc = Service([str(jaeger_bin), f"--config={cfg}"], tmp / "jaeger.log", ready, "jaeger")
    return Jaeger(ports, cfg, svc)


@dataclass
class Collector:
    ports: CollectorPorts
    config: Path
    service: Service

    @property
    def log(self) -> Path:
        return self.service.log

    @property
    def otlp_grpc(self) -> str:
        return f"http://127.0.0.1:{self.ports.otlp_grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}/metrics"

    @property
    def telemetry_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.telemetry}/metrics"


def collector_service(otelcol_bin: Path, tmp: Path, jaeger_otlp: str) -> Collector:
    ports = CollectorPorts.free()
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "otel-collector.local.yaml"
    cfg.write_text(yaml.safe_dump(local_collector_config(ports, jaeger_otlp)))
    ready = f"http://127.0.0.1:{ports.health}/"
    svc = Service([str(otelcol_bin), f"--config={cfg}"], tmp / "otelcol.log", ready,
                  "otelcol-graphai")  # fmt: skip
    return Collector(ports, cfg, svc)


@pytest.fixture
def jaeger(jaeger_bin: Path, tmp_path: Path) -> Iterator[Jaeger]:
    """deploy/jaeger.yaml, keeping every trace (tests of delivery, not of sampling)."""
    j = jaeger_service(jaeger_bin, tmp_path, keep_percent=100)
    with j.service.running():
        yield j


@pytest.fixture
def collector(otelcol_bin: Path, jaeger: Jaeger, tmp_path: Path) -> Iterator[Collector]:
    c = collector_service(otelcol_bin, tmp_path, jaeger.otlp_grpc)
    with c.service.running():
        yield c


# -- Prometheus ----------------------------------------------------------------------------------


PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus.yml"


def collector_relabel() -> list[dict[str, Any]]:
    """The metric relabelling of deploy/prometheus.yml's Collector job, as shipped."""
    shipped = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in shipped["scrape_configs"] if j["job_name"] == "otel-collector"]
    return list(job["metric_relabel_configs"])


@contextmanager
def run_prometheus(tmp: Path, jobs: Mapping[str, tuple[str, bool]]) -> Iterator[Prometheus]:
    """Debian's Prometheus with exemplar storage on, scraping every second each job
    ``name -> (host:port, honor_labels)``; stopped on exit."""
    binary = require_tool("prometheus", "apt-get install --no-install-recommends prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": name, "honor_labels": honor, "static_configs": [{"targets": [target]}]}
            | ({"metric_relabel_configs": collector_relabel()} if honor else {})
            for name, (target, honor) in jobs.items()
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    svc = Service(
        [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage"],
        tmp / "prometheus.log", f"http://127.0.0.1:{port}/-/ready", "prometheus",
    )  # fmt: skip
    with svc.running():
        assert svc.proc is not None
        yield Prometheus(f"http://127.0.0.1:{port}", svc.proc, svc.log)


# -- the planned workload ----------------------------------------------------------------------

WORKLOAD = Path(__file__).with_name("_workload.py")
WORKLOAD_TIMEOUT_S = 60.0


def workload_env(**extra: str) -> dict[str, str]:
    """A clean environment (no OTEL_*/GRAPHAI_* of the caller) with metrics exported every
    second and spans batched for at most 200 ms, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    env |= {"PYTHONPATH": str(ROOT), "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_BSP_SCHEDULE_DELAY": "200"}  # fmt: skip
    return env | extra


@dataclass
class Workload:
    """tests/stack/_workload.py as a running process: its run lines (a file), its stdout lines
    (read by a thread) and its stderr (a file, graphai's and the SDK's log lines)."""

    proc: subprocess.Popen[str]
    out: Path
    stderr: Path
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))

        self.reader = threading.Thread(target=read, name="workload-stdout", daemon=True)
        self.reader.start()

    def runs(self) -> list[dict[str, Any]]:
        text = self.out.read_text() if self.out.exists() else ""
        return [json.loads(ln) for ln in text.splitlines()]

    def line(self, prefix: str, timeout: float = WORKLOAD_TIMEOUT_S) -> str:
        def found() -> str | None:
            if self.proc.poll() is not None and not any(ln.startswith(prefix) for ln in self.lines):
                pytest.fail(f"workload exited with rc {self.proc.returncode} before {prefix!r}:\n"
                            f"{self.lines}\n{self.stderr.read_text()[-3000:]}")
            return next((ln for ln in self.lines if ln.startswith(prefix)), None)

        return poll(found, timeout, interval=0.05, what=f"workload line {prefix!r}")

    def finish(self, timeout: float = WORKLOAD_TIMEOUT_S) -> int:
        """Close stdin (ends ``--hold``) and wait; the exit code."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            pytest.fail(f"workload still running after {timeout} s:\n{self.lines}")


@contextmanager
def run_workload(tmp: Path, *args: str, env: Mapping[str, str] | None = None) -> Iterator[Workload]:
    tmp.mkdir(parents=True, exist_ok=True)
    out, err = tmp / "runs.jsonl", tmp / "workload.stderr"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(WORKLOAD), "--out", str(out), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env=dict(env or workload_env()), cwd=tmp,
        )  # fmt: skip
    w = Workload(proc, out, err)
    try:
        yield w
    finally:
        if proc.poll() is None:
            w.finish(timeout=STOP_TIMEOUT_S)
        assert w.reader is not None and proc.stdout is not None and proc.stdin is not None
        w.reader.join(timeout=STOP_TIMEOUT_S)
        proc.stdout.close()
        if not proc.stdin.closed:
            proc.stdin.close()


# -- one stack and one planned workload for the sampling and metrics tests ------------------------

N_FAST, N_SLOW, N_FAIL = 150, 5, 10
PLAN_SEED = 14
SERVICE = "graphai-stack-plan"
INPROCESS_JOB = "graphai-inprocess"  # Prometheus' job for the workload's own /metrics
LABEL_LIMIT, OVERFLOW_NODES = 4, 4


@dataclass
class PlannedStack:
    jaeger: Jaeger
    collector: Collector
    prometheus: Prometheus
    workload: Workload
    metrics_addr: str  # the workload's own /metrics, host:port
    runs: list[dict[str, Any]]  # the planned runs (kind fast | slow | fail), in plan order
    overflow_trace: str
    done_at: float  # time.monotonic() when the plan was done and flushed

    def await_sampling_decisions(self) -> None:
        """Sleep until Jaeger has decided on every trace: DECISION_WAIT after a trace's first
        span, on the processor's next one-second tick, plus a second of margin."""
        wait = float(DECISION_WAIT.removesuffix("s")) + 2.0
        time.sleep(max(0.0, self.done_at + wait - time.monotonic()))


@pytest.fixture(scope="package")  # stopped when the last test of tests/stack is done
def planned_stack(
    otelcol_bin: Path, jaeger_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlannedStack]:
    """Jaeger (deploy/jaeger.yaml, tail sampling as shipped), the Collector, Prometheus scraping
    the Collector's exporter (honor_labels: job = service.name) and the workload's own /metrics
    (job ``graphai-inprocess``), and one workload: N_FAST fast, N_SLOW slow-TTFT and N_FAIL
    failing runs in a seeded order, 4 at a time over about 7 s, then held (flushed, /metrics up)
    until the package's tests are done."""
    tmp = tmp_path_factory.mktemp("planned-stack")
    plan = ["fast"] * N_FAST + ["slow"] * N_SLOW + ["fail"] * N_FAIL
    random.Random(PLAN_SEED).shuffle(plan)
    j = jaeger_service(jaeger_bin, tmp / "jaeger")
    metrics_addr = f"127.0.0.1:{free_port()}"
    with j.service.running():
        c = collector_service(otelcol_bin, tmp / "collector", j.otlp_grpc)
        jobs = {"collector": (f"127.0.0.1:{c.ports.prometheus}", True),
                INPROCESS_JOB: (metrics_addr, False)}  # fmt: skip
        with (
            c.service.running(),
            run_prometheus(tmp / "prometheus", jobs) as prom,
            run_workload(
                tmp / "workload", "--otlp", c.otlp_grpc, "--service", SERVICE,
                "--metrics-port", metrics_addr.rpartition(":")[2], "--plan", ",".join(plan),
                "--pace-s", "0.1", "--overflow-nodes", str(OVERFLOW_NODES), "--hold",
                env=workload_env(GRAPHAI_METRICS_LABEL_LIMIT=str(LABEL_LIMIT)),
            ) as w,
        ):  # fmt: skip
            w.line("DONE")
            done_at = time.monotonic()
            lines = w.runs()
            runs = sorted((r for r in lines if r["kind"] != "overflow"), key=lambda r: r["i"])
            (overflow,) = [r["trace_id"] for r in lines if r["kind"] == "overflow"]
            assert [r["kind"] for r in runs] == plan
            yield PlannedStack(j, c, prom, w, metrics_addr, runs, overflow, done_at)
            assert w.finish() == 0, w.stderr.read_text()[-3000:]
