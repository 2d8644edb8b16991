"""
Live: a real graphai workload (tests/ops/workload.py, telemetry via graphai.telemetry.configure)
scraped every second by Debian's Prometheus with the fast-test rules, optionally with
Alertmanager and a webhook receiver.

- every series the dashboards and rules use is in the workload's exposition, which promtool lints;
- every dashboard query returns series (variables set to the workload's names), in both GenAI
  conventions modes (default, and OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental, whose
  /metrics has the latest GenAI series and none of the default ones);
- slow streaming fires GraphaiStreamingThroughputLow and Alertmanager delivers it;
- a stalled stream fires GraphaiStreamStalled;
- a healthy workload, with every SLO expression evaluated on its data, fires nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from graphai.telemetry import _semconv
from graphai.telemetry import names as N
from tests._tools import free_port, poll
from tests.integration.prom_fixtures import (
    Prometheus,
    run_alertmanager,
    run_prometheus,
    run_webhook_receiver,
)
from tests.ops._ops import (
    ALERTS,
    FAST_ALERTS,
    REPO,
    dashboards,
    promtool,
    queries,
    rules,
    run,
    seconds,
    series_names,
    substitute,
)
from tests.ops.workload import GRAPH_NAME, SERVICE_NAME, STREAM_NODE

pytestmark = pytest.mark.integration

WORKLOAD = Path(__file__).with_name("workload.py")
JOB = "graphai"  # the scrape job name prom_fixtures gives the workload
ZERO_FALLBACK = " or on() vector(0)"  # dashboards/_promql.py
LIVE_WINDOWS = {"__rate_interval": "30s", "__interval": "5s", "__range": "1m"}
# stall mode with failures and label overflow: every panel has something to show
EVERYTHING = ("--mode", "stall", "--stall-s", "3", "--fail-every", "3", "--overflow-nodes", "4",
              "--otlp-down", str(free_port()))  # fmt: skip
EVERYTHING_ENV = {"GRAPHAI_STALL_AFTER_S": "1", "GRAPHAI_METRICS_LABEL_LIMIT": "4",
                  # span batches every 0.5 s, each failing within 1 s (nothing listens)
                  "OTEL_BSP_SCHEDULE_DELAY": "500", "OTEL_EXPORTER_OTLP_TIMEOUT": "1"}  # fmt: skip
READY_S, ALERT_S, DELIVERY_S = 20.0, 45.0, 20.0


def _scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=2) as resp:
        return str(resp.read().decode())


@contextmanager
def workload(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run workload.py (``args``) until the end of the block; yields its ``host:port``."""
    address = f"127.0.0.1:{free_port()}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    clean |= {"PYTHONPATH": str(REPO), **(env or {})}
    log = tmp / "workload.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(WORKLOAD), "--port", address.rpartition(":")[2],
             "--seconds", "110", *args],
            cwd=REPO, env=clean, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def serving() -> bool:
            if proc.poll() is not None:
                pytest.fail(
                    f"workload exited with rc {proc.returncode}:\n{log.read_text()[-4000:]}"
                )
            return "graphai_node_duration_seconds" in _scrape(address)

        poll(serving, READY_S, interval=0.2, what=f"workload /metrics on {address}")
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _firing(prom: Prometheus, alertname: str) -> dict[str, Any] | None:
    for alert in prom.alerts():
        if alert["labels"]["alertname"] == alertname and alert["state"] == "firing":
            return alert
    return None


def _assert_rules_healthy(prom: Prometheus) -> None:
    def evaluated() -> bool:
        states = {r["name"]: r["health"] for r in prom.rules()}
        bad = {n: h for n, h in states.items() if h != "ok"}
        if bad:
            raise AssertionError(f"rules not ok: {bad}")
        return bool(states)

    poll(evaluated, 10, what="every rule evaluated with health ok")


def _recording(prefix: str) -> str:
    (name,) = [r["record"] for r in rules(FAST_ALERTS) if r.get("record", "").startswith(prefix)]
    return name


def test_workload_exposes_every_series_the_dashboards_and_rules_use(tmp_path: Path) -> None:
    used = {n for _, _, t in queries() for n in series_names(t["expr"])}
    used |= {n for r in rules(ALERTS) for n in series_names(r["expr"]) if ":" not in n}
    seen: set[str] = set()
    with workload(tmp_path, *EVERYTHING, env=EVERYTHING_ENV) as address:

        def all_seen() -> str | None:
            text = _scrape(address)
            seen.update(re.findall(r"^([a-zA-Z_:][\w:]*)[{ ]", text, flags=re.M))
            missing = used - seen
            if missing:
                raise AssertionError(f"not exposed (yet): {sorted(missing)}")
            return text

        text = poll(all_seen, 40, interval=0.5, what="every used series in /metrics")
    lint = run([promtool(), "check", "metrics"], input=text)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def _genai_series(mode: str) -> set[str]:
    """The ``_count`` series of the GenAI histograms ``mode`` records for the workload (an llm
    and a tool node)."""
    conv = _semconv.conventions(mode)
    recorded = [conv.llm_duration, conv.llm_ttfc, conv.llm_tpoc]
    recorded += [m for m in (conv.run_duration, conv.node_durations.get("tool")) if m]
    return {f"{N.METRICS[m][4]}_count" for m in recorded}


@pytest.mark.parametrize("mode", _semconv.MODES)
def test_every_dashboard_query_returns_series(tmp_path: Path, mode: str) -> None:
    values = {"job": JOB, "graph": GRAPH_NAME, "node": ".*", **LIVE_WINDOWS}
    exprs = {}
    for uid, panel, t in queries():
        expr = substitute(t["expr"], values)
        exprs[f"{uid} / {panel['title']} / {t['refId']}"] = expr
        if expr.endswith(ZERO_FALLBACK):  # the real series too, not just the fallback 0
            exprs[f"{uid} / {panel['title']} / {t['refId']} without fallback"] = expr.removesuffix(
                ZERO_FALLBACK
            )
    variables = {
        f"{d['uid']} ${v['name']}": substitute(v["query"], values)
        for d in dashboards().values()
        for v in d["templating"]["list"]
        if v["type"] == "query"
    }
    expected = {"job": JOB, "graph": GRAPH_NAME, "node": STREAM_NODE, "service": SERVICE_NAME}

    opt_in = {} if mode == _semconv.DEFAULT else {_semconv.OTEL_SEMCONV_STABILITY_OPT_IN: mode}
    with (
        workload(tmp_path, *EVERYTHING, env={**EVERYTHING_ENV, **opt_in}) as address,
        run_prometheus(tmp_path / "prom", [address], [FAST_ALERTS]) as prom,
    ):
        poll(prom.targets_up, 15, what="scrape target up")
        other = next(m for m in _semconv.MODES if m != mode)

        def this_mode_only() -> bool:
            exposed = set(re.findall(r"^([a-zA-Z_:][\w:]*)[{ ]", _scrape(address), flags=re.M))
            assert not (_genai_series(other) - _genai_series(mode)) & exposed, mode  # never both
            missing = _genai_series(mode) - exposed
            if missing:
                raise AssertionError(f"not exposed (yet): {sorted(missing)}")
            return True

        poll(this_mode_only, 15, interval=0.5, what=f"the GenAI series of mode {mode}")

        def all_return_series() -> bool:
            empty = [name for name, expr in exprs.items() if not prom.query(expr)]
            if empty:
                raise AssertionError(f"{len(empty)} queries return nothing: {empty}")
            return True

        poll(all_return_series, 60, interval=1.0, what="every dashboard query returns series")

        for name, query in variables.items():
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
            assert m, query
            got = prom.label_values(m.group(2), m.group(1))
            assert expected[name.rpartition("$")[2]] in got, (name, got)
        _assert_rules_healthy(prom)


def test_slow_streaming_fires_the_throughput_alert_and_alertmanager_delivers_it(
    tmp_path: Path,
) -> None:
    with (
        run_webhook_receiver() as hook,
        run_alertmanager(tmp_path / "am", hook.url) as am,
        workload(tmp_path, "--mode", "slow") as address,
        run_prometheus(tmp_path / "prom", [address], [FAST_ALERTS], am.address) as prom,
    ):
        alert = poll(
            lambda: _firing(prom, "GraphaiStreamingThroughputLow"),
            ALERT_S,
            interval=0.5,
            what="GraphaiStreamingThroughputLow firing in Prometheus",
        )
        assert {k: alert["labels"][k] for k in ("job", "graphai_graph_name", "graphai_node_name",
                                               "severity")} == {
            "job": JOB, "graphai_graph_name": GRAPH_NAME, "graphai_node_name": STREAM_NODE,
            "severity": "warning",
        }  # fmt: skip
        assert 0 < float(alert["value"]) < 5, "p50 of ~2 tokens/s, under the 5 tokens/s threshold"

        def delivered() -> list[dict[str, Any]]:
            return [
                a for a in hook.alerts()
                if a["labels"]["alertname"] == "GraphaiStreamingThroughputLow"
                and a["status"] == "firing"
            ]  # fmt: skip

        (first, *_) = poll(delivered, DELIVERY_S, interval=0.5, what="webhook got the alert")
        assert first["labels"]["graphai_node_name"] == STREAM_NODE
        assert first["annotations"]["runbook_url"].endswith(
            "docs/operations.md#graphaistreamingthroughputlow"
        )
        assert f"node {STREAM_NODE} of graph {GRAPH_NAME}" in first["annotations"]["description"]


def test_a_stalled_stream_fires_the_stall_alert(tmp_path: Path) -> None:
    with (
        workload(tmp_path, "--mode", "stall", "--stall-s", "8",
                 env={"GRAPHAI_STALL_AFTER_S": "1"}) as address,
        run_prometheus(tmp_path / "prom", [address], [FAST_ALERTS]) as prom,
    ):  # fmt: skip
        alert = poll(
            lambda: _firing(prom, "GraphaiStreamStalled"),
            ALERT_S,
            interval=0.5,
            what="GraphaiStreamStalled firing",
        )
        assert alert["labels"]["graphai_node_name"] == STREAM_NODE
        assert float(alert["value"]) >= 1


def test_a_healthy_workload_fires_nothing(tmp_path: Path) -> None:
    p50 = _recording("job_graph_node:graphai_node_output_token_rate_per_second:p50_rate")
    observations = _recording("job_graph_node:graphai_node_output_token_rate_per_second_count:")
    node_errors = _recording("job_graph_node:graphai_node_errors:ratio_rate")
    ttft_bad = sorted(
        r["record"]
        for r in rules(FAST_ALERTS)
        if r.get("record", "").startswith("job_graph:graphai_ttft_slo_errors")
    )
    fast_for = max(seconds(r.get("for", "0s")) for r in rules(FAST_ALERTS) if "alert" in r)

    with (
        workload(tmp_path, "--mode", "healthy") as address,
        run_prometheus(tmp_path / "prom", [address], [FAST_ALERTS]) as prom,
    ):

        def value(expr: str) -> float | None:
            result = prom.query(f'{expr}{{graphai_graph_name="{GRAPH_NAME}"}}')
            return max(float(s["value"][1]) for s in result) if result else None

        def evaluated_on_data() -> bool:
            """The alerts' inputs exist and are healthy, so "no alert" means something."""
            got = {e: value(e) for e in (p50, observations, node_errors, *ttft_bad)}
            if any(v is None for v in got.values()):
                raise AssertionError(f"not recorded yet: {got}")
            assert got[p50] >= 5, got  # median token rate above the threshold
            assert got[observations] >= 0.05, got  # above the traffic guard: alerts are armed
            assert got[node_errors] == 0 and all(got[e] == 0 for e in ttft_bad), got
            return True

        poll(evaluated_on_data, 40, interval=1.0, what="SLO inputs recorded from the workload")
        _assert_rules_healthy(prom)
        deadline = time.monotonic() + fast_for + 5  # longer than any `for:` of the fast rules
        while time.monotonic() < deadline:
            assert prom.alerts() == [], "a healthy workload must not even make an alert pending"
            time.sleep(0.5)
