"""
Multi-worker servers (docs/operations.md, "Multi-worker servers").

In process: ``prometheus_ports`` / ``GRAPHAI_PROMETHEUS_PORTS`` (first free port of a range,
logged), the failure message a taken port gives, and ``service.instance.id``.

Live: the FastAPI SSE example under a real ``uvicorn --workers 2``, each worker on its own
``/metrics`` port of a ``GRAPHAI_PROMETHEUS_PORTS=2`` range, SSE requests served by both
workers, and Debian's Prometheus scraping both as separate targets: the runs query sums to
exactly the number of runs, and ``target_info`` carries one ``service.instance.id`` per worker.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from graphai import _hooks
from graphai.errors import TelemetryConfigError
from graphai.telemetry._prometheus import GRAPHAI_PROMETHEUS_PORTS, LOG_PROMETHEUS_STARTED
from graphai.telemetry.setup import TelemetryHandle, configure
from tests._tools import free_port, free_port_range, poll
from tests.integration.multiworker_fixtures import (
    check_runs_per_worker,
    require_modules,
    run_server,
    server_env,
    stream_on_every_worker,
    wait_up,
)
from tests.integration.prom_fixtures import run_prometheus

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
RUNS = 20


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k in list(os.environ):
        if k.startswith(("OTEL_", "GRAPHAI_")):
            monkeypatch.delenv(k)
    before = _hooks.get_instrumentation()
    yield
    _hooks.set_instrumentation(before)


@pytest.fixture
def handles() -> Iterator[list[TelemetryHandle]]:
    made: list[TelemetryHandle] = []
    yield made
    for h in made:
        h.shutdown(timeout_s=2)


def local(made: list[TelemetryHandle], **kw: Any) -> TelemetryHandle:
    kw.setdefault("set_global", False)
    h = configure(**kw)
    made.append(h)
    return h


# -- in process ------------------------------------------------------------------------------
def test_port_range_takes_the_next_free_port_and_logs_it(handles: list[TelemetryHandle]) -> None:
    base = free_port_range(3)
    with structlog.testing.capture_logs() as logs:
        a = local(handles, prometheus_addr=f"127.0.0.1:{base}", prometheus_ports=3)
        b = local(handles, prometheus_addr=f"127.0.0.1:{base}", prometheus_ports=3)
    assert (a.prometheus_addr, b.prometheus_addr) == (f"127.0.0.1:{base}", f"127.0.0.1:{base + 1}")
    started = [e for e in logs if e["event"] == LOG_PROMETHEUS_STARTED]
    assert [e["addr"] for e in started] == [a.prometheus_addr, b.prometheus_addr]
    assert started[1]["fallback_from"] == f"127.0.0.1:{base}"
    assert all(e["log_level"] == "info" and e["pid"] == os.getpid() for e in started)


def test_port_range_from_the_environment(
    handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = free_port_range(2)
    monkeypatch.setenv("GRAPHAI_PROMETHEUS_ADDR", f"127.0.0.1:{base}")
    monkeypatch.setenv(GRAPHAI_PROMETHEUS_PORTS, "2")
    a, b, c = (local(handles) for _ in range(3))
    assert [h.prometheus_addr for h in (a, b)] == [f"127.0.0.1:{base}", f"127.0.0.1:{base + 1}"]
    assert c.prometheus_addr is None  # the range is full: c retries in the background
    assert a.shutdown(timeout_s=3)  # an old worker exits (gunicorn HUP): c takes its port
    poll(lambda: c.prometheus_addr, 5.0, what="the freed port taken by the waiting handle")
    assert c.prometheus_addr == f"127.0.0.1:{base}"


def test_a_taken_port_names_the_multiworker_section(handles: list[TelemetryHandle]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with structlog.testing.capture_logs() as logs:
            h = local(handles, prometheus_addr=f"127.0.0.1:{port}")
    assert h.prometheus_addr is None
    (failed,) = [e for e in logs if e["event"] == "telemetry.prometheus_failed"]
    assert "Multi-worker servers" in failed["hint"] and GRAPHAI_PROMETHEUS_PORTS in failed["hint"]


@pytest.mark.parametrize("value", ["0", "-1", "two", "1025"])
def test_invalid_ports_variable_names_it(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(GRAPHAI_PROMETHEUS_PORTS, value)
    with pytest.raises(TelemetryConfigError, match=GRAPHAI_PROMETHEUS_PORTS):
        configure(set_global=False, prometheus_addr="127.0.0.1:0")


@pytest.mark.parametrize("value", [0, True, 2.0, "2"])
def test_invalid_ports_argument(value: Any) -> None:
    with pytest.raises(TelemetryConfigError, match="prometheus_ports"):
        configure(set_global=False, prometheus_addr="127.0.0.1:0", prometheus_ports=value)


def _instance_id(h: TelemetryHandle) -> Any:
    return h.tracer_provider.resource.attributes.get("service.instance.id")  # type: ignore[union-attr]


def test_instance_id_defaults_to_host_and_pid(handles: list[TelemetryHandle]) -> None:
    h = local(handles, prometheus_addr=False)
    assert _instance_id(h) == f"{socket.gethostname()}-{os.getpid()}"


def test_instance_id_from_otel_resource_attributes_wins(
    handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7,deployment=x")
    h = local(handles, prometheus_addr=False)
    assert _instance_id(h) == "pod-7"


def _exprs() -> list[str]:
    import yaml

    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in sorted((ROOT / "dashboards" / "grafana").glob("*.json")):
        walk(json.loads(path.read_text()))
    for path in sorted((ROOT / "dashboards" / "alerts").glob("graphai-alerts*.yml")):
        walk(yaml.safe_load(path.read_text()))
    return found


def test_dashboards_and_rules_aggregate_across_worker_instances() -> None:
    """Per-worker targets differ only in ``instance``: no query may keep it (a per-service
    view), and a gauge counting streams is summed over the workers, not maxed."""
    exprs = _exprs()
    assert len(exprs) > 20
    assert not [e for e in exprs if "instance" in e]
    for gauge in ("graphai_node_active", "graphai_stream_stalled"):
        uses = [e for e in exprs if gauge in e]
        assert uses and all(e.lstrip("(").startswith("sum by") for e in uses), uses


# -- live: uvicorn --workers 2 + Prometheus -----------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_uvicorn_workers_each_expose_metrics_and_prometheus_counts_every_run(
    tmp_path: Path,
) -> None:
    require_modules("uvicorn", "httpx")
    t0 = time.monotonic()
    base, app_port = free_port_range(WORKERS), free_port()
    env = server_env(
        GRAPHAI_PROMETHEUS_ADDR=f"127.0.0.1:{base}", GRAPHAI_PROMETHEUS_PORTS=str(WORKERS)
    )
    log = tmp_path / "uvicorn.log"
    cmd = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "examples"), "--factory",
        "fastapi_sse:serve_app", "--workers", str(WORKERS), "--host", "127.0.0.1",
        "--port", str(app_port), "--no-access-log",
    ]  # fmt: skip
    metrics = [f"127.0.0.1:{p}" for p in range(base, base + WORKERS)]
    url = f"http://127.0.0.1:{app_port}"
    with run_server(cmd, env, log) as proc:
        urls = [f"http://{addr}/metrics" for addr in metrics] + [f"{url}/whoami"]
        wait_up(proc, log, urls, "uvicorn workers and their /metrics endpoints")
        # every worker serves some of the streams (concurrent streams spread over the workers)
        served = stream_on_every_worker(url, WORKERS, RUNS, budget_s=40 - (time.monotonic() - t0))
        with run_prometheus(tmp_path / "prom", metrics, rule_files=[]) as prom:
            ids = check_runs_per_worker(prom, served, metrics)
        assert log.read_text().count("telemetry.prometheus_started") == WORKERS, log.read_text()
    print(
        f"multi-worker live test: {time.monotonic() - t0:.1f}s, {len(served)} runs", json.dumps(ids)
    )
