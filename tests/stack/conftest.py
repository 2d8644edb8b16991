"""
Fixtures for tests/stack: the binaries deploy/build-stack.sh builds, a local variant of
deploy/otel-collector.yaml, and the Collector and Jaeger v2 as running processes.

The binaries' paths come from ``deploy/build-stack.sh --paths`` (the script owns the versions
hash). A binary that is not built skips its tests with one line naming the path and
``make stack``, also under CI=true: CI does not build the stack yet (it is opt-in).

Every process listens on 127.0.0.1 free ports, logs to a file in the test's tmp dir, is polled
for readiness with a bound and is stopped (TERM, then KILL) in ``finally``.
"""

from __future__ import annotations

import copy
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._tools import free_port, poll

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "deploy" / "build-stack.sh"
COLLECTOR_CONFIG = ROOT / "deploy" / "otel-collector.yaml"
COMPOSE_FILE = ROOT / "docker-compose.otel.yml"

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


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


# -- deploy/otel-collector.yaml with local ports ---------------------------------------------------

_ENDPOINT = re.compile(r"^(?P<host>[A-Za-z0-9_.-]+):(?P<port>\d+)$")


@dataclass
class CollectorPorts:
    otlp_grpc: int
    otlp_http: int
    health: int
    prometheus: int  # the prometheus exporter (graphai's series)
    telemetry: int  # the Collector's own metrics

    @classmethod
    def free(cls) -> CollectorPorts:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


def load_collector_config() -> dict[str, Any]:
    return yaml.safe_load(COLLECTOR_CONFIG.read_text())


def local_collector_config(ports: CollectorPorts, jaeger_otlp: str) -> dict[str, Any]:
    """deploy/otel-collector.yaml with every listen address on 127.0.0.1 free ports and the
    Jaeger exporter pointed at ``jaeger_otlp`` (``host:port``); nothing else changes. An
    endpoint this does not know fails the test, so a new one in the file is not missed."""
    cfg = copy.deepcopy(load_collector_config())
    by_port = {  # the compose stack's ports, as the file names them
        "4317": f"127.0.0.1:{ports.otlp_grpc}",
        "4318": f"127.0.0.1:{ports.otlp_http}",
        "13133": f"127.0.0.1:{ports.health}",
        "8889": f"127.0.0.1:{ports.prometheus}",
    }
    jaeger_exporters = [k for k in cfg["exporters"] if k.split("/")[0] in ("otlp", "otlp_grpc")]
    assert jaeger_exporters == ["otlp/jaeger"], jaeger_exporters

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str) and path.endswith(".endpoint"):
            if path == ".exporters.otlp/jaeger.endpoint":
                return jaeger_otlp
            m = _ENDPOINT.match(node)
            if m is None or m["host"] != "0.0.0.0" or m["port"] not in by_port:
                pytest.fail(f"{COLLECTOR_CONFIG.name}: unknown endpoint {path} = {node!r}; "
                            "map it in tests/stack/conftest.py")
            return by_port[m["port"]]
        return node

    cfg = walk(cfg, "")
    readers = cfg["service"]["telemetry"]["metrics"]["readers"]
    prom = readers[0]["pull"]["exporter"]["prometheus"]
    assert len(readers) == 1 and prom["port"] == 8888, readers
    prom.update(host="127.0.0.1", port=ports.telemetry)
    return cfg


# -- processes -----------------------------------------------------------------------------------


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def run_process(
    argv: list[str], log: Path, ready_url: str, what: str
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"{what} exited with rc {proc.returncode}:\n{log.read_text()[-3000:]}")
            return _get(ready_url)[0] == 200

        poll(ready, READY_TIMEOUT_S, interval=0.2, what=f"{what} ready at {ready_url}")
        yield proc
    finally:
        stop(proc)


@dataclass
class Jaeger:
    otlp_grpc: str  # host:port
    query_url: str  # http://host:port
    log: Path


def jaeger_config(otlp_grpc: int, otlp_http: int, query_http: int, query_grpc: int,
                  health: int, telemetry: int) -> dict[str, Any]:
    """Jaeger v2 all-in-one with in-memory storage (its built-in all-in-one.yaml, trimmed to
    the OTLP receiver and the query extension), every address on 127.0.0.1."""
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"],
                                     "exporters": ["jaeger_storage_exporter"]}},
            "telemetry": {
                "resource": {"service.name": "jaeger"},
                "metrics": {"level": "basic", "readers": [{"pull": {"exporter": {"prometheus": {
                    "host": "127.0.0.1", "port": telemetry}}}}]},
                "logs": {"level": "info"},
            },
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 10000}}}},
            "jaeger_query": {"storage": {"traces": "memstore"},
                             "http": {"endpoint": f"127.0.0.1:{query_http}"},
                             "grpc": {"endpoint": f"127.0.0.1:{query_grpc}"}},
            "healthcheckv2": {"use_v2": True, "http": {"endpoint": f"127.0.0.1:{health}"}},
        },
        "receivers": {"otlp": {"protocols": {
            "grpc": {"endpoint": f"127.0.0.1:{otlp_grpc}"},
            "http": {"endpoint": f"127.0.0.1:{otlp_http}"}}}},
        "processors": {"batch": {}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }


@pytest.fixture
def jaeger(jaeger_bin: Path, tmp_path: Path) -> Iterator[Jaeger]:
    grpc, http, q_http, q_grpc, health, tel = (free_port() for _ in range(6))
    cfg = tmp_path / "jaeger.yaml"
    cfg.write_text(yaml.safe_dump(jaeger_config(grpc, http, q_http, q_grpc, health, tel)))
    query = f"http://127.0.0.1:{q_http}"
    log = tmp_path / "jaeger.log"
    with run_process([str(jaeger_bin), f"--config={cfg}"], log, f"{query}/api/services", "jaeger"):
        yield Jaeger(f"127.0.0.1:{grpc}", query, log)


@dataclass
class Collector:
    ports: CollectorPorts
    config: Path
    log: Path

    @property
    def otlp_grpc(self) -> str:
        return f"http://127.0.0.1:{self.ports.otlp_grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}/metrics"


@pytest.fixture
def collector(otelcol_bin: Path, jaeger: Jaeger, tmp_path: Path) -> Iterator[Collector]:
    ports = CollectorPorts.free()
    cfg = tmp_path / "otel-collector.local.yaml"
    cfg.write_text(yaml.safe_dump(local_collector_config(ports, jaeger.otlp_grpc)))
    log = tmp_path / "otelcol.log"
    ready = f"http://127.0.0.1:{ports.health}/"
    with run_process([str(otelcol_bin), f"--config={cfg}"], log, ready, "otelcol-graphai"):
        yield Collector(ports, cfg, log)
