"""
Fault runs on the real stack: a workload (tests/stack/_workload.py: fast streaming runs, two at
a time, about 9 per second) exports to the Collector while the Collector, or Jaeger behind it,
is stopped mid-run and started again on the same ports.

Both: every graph result and token stream is what a run without faults gives, no run is slowed
(export happens on the SDK's own threads), and the workload, its shutdown included, ends within
a bound.

- Collector down (``OTEL_EXPORTER_OTLP_TIMEOUT=1``, so an export gives up after 1 s): graphai
  logs ``telemetry.export_failed`` once per signal (rate-limited: later failures within the
  minute are counted, not logged, while the SDK logs each one); the spans of runs that ended
  during the outage are lost, and only those; graphai's metrics lose nothing (cumulative: the
  first export after the restart carries every run), while the span metrics, computed in the
  Collector, start again from zero and miss the lost spans.
- Jaeger down: graphai sees no failure at all; the Collector queues and retries (it logs each
  failed attempt) and delivers every span once Jaeger is back: every run that started during
  the outage is complete in the restarted Jaeger.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from tests._tools import poll
from tests.stack._workload import RUN_SPANS, TOKENS, TOOL_NODE
from tests.stack.conftest import Collector, Jaeger, Workload, get, run_workload, workload_env

N_RUNS = 110  # about 12 s at two runs at a time, 0.2 s apart
STOP_AFTER_RUNS = 12
OUTAGE_S = {"collector": 6.0, "jaeger": 4.0}
BATCH_S = 0.5  # spans of a run reach an exporter within the BSP delay (200 ms) and an export
RECONNECT_S = 3.0  # the SDK's gRPC channel reconnects within this after the Collector is back
MAX_RUN_WALL_S = 0.5  # a fast run takes about 30 ms
PLAN_BOUND_S = 30.0
SHUTDOWN_BOUND_S = 5.5  # TelemetryHandle.shutdown's 5 s budget, plus margin
DELIVERY_TIMEOUT_S = 30.0
SDK_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"


def _start(tmp: Path, collector: Collector, service: str, **env: str) -> Any:
    return run_workload(
        tmp / "workload", "--otlp", collector.otlp_grpc, "--service", service,
        "--plan", ",".join(["fast"] * N_RUNS), "--concurrency", "2", "--pace-s", "0.2",
        env=workload_env(**env),
    )  # fmt: skip


def _complete(jaeger: Jaeger, service: str) -> set[str]:
    """Trace ids Jaeger holds whole (the run span and both node spans)."""
    return {t["traceID"] for t in jaeger.traces(service) if len(t["spans"]) == RUN_SPANS}


def _await_first_runs(w: Workload) -> None:
    poll(lambda: len(w.runs()) >= STOP_AFTER_RUNS, DELIVERY_TIMEOUT_S, interval=0.05,
         what=f"{STOP_AFTER_RUNS} runs done")  # fmt: skip


def _assert_runs_unchanged(w: Workload) -> list[dict[str, Any]]:
    """Every run's result and token stream as without faults, none slowed, all ended."""
    assert w.finish() == 0, w.stderr.read_text()[-3000:]
    runs = sorted(w.runs(), key=lambda r: r["i"])
    assert [r["i"] for r in runs] == list(range(N_RUNS))
    text = "".join(f"t{k} " for k in range(TOKENS))
    stream = ["<graphai:generate:start:>", "<graphai:generate:>",
              *(f"t{k} " for k in range(TOKENS)), "<graphai:generate:end:>", "<graphai:END:>"]  # fmt: skip
    for r in runs:
        assert r["result"] == {"i": r["i"], "kind": "fast", "text": text, "length": len(text)}, r
        assert r["tokens"] == stream, r
        assert (r["status"], r["outcome"]) == ("UNSET", "ok"), r
    walls = [r["wall_s"] for r in runs]
    assert max(walls) < MAX_RUN_WALL_S, max(walls)
    (plan,) = [float(ln.split()[1]) for ln in w.lines if ln.startswith("PLAN_DONE")]
    (shutdown,) = [ln for ln in w.lines if ln.startswith("SHUTDOWN")]
    assert plan < PLAN_BOUND_S, plan
    assert shutdown.split()[1] == "ok=True" and float(shutdown.split()[2]) < SHUTDOWN_BOUND_S
    return runs


def _collector_series(collector: Collector, url: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in a Collector exposition."""
    text = get(url)[1].decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(rf"^{name}(\{{.*\}}) (\S+)$", text, flags=re.M)}  # fmt: skip


def test_collector_restart_mid_run_loses_only_the_outage_spans_and_no_metric(
    collector: Collector, jaeger: Jaeger, tmp_path: Path
) -> None:
    service = "graphai-fault-collector"
    with _start(tmp_path, collector, service, OTEL_EXPORTER_OTLP_TIMEOUT="1") as w:
        _await_first_runs(w)
        t_stop = time.time()
        collector.service.stop()
        time.sleep(OUTAGE_S["collector"])
        assert w.proc.poll() is None and len(w.runs()) < N_RUNS - 20, "outage must be mid-run"
        t_restart = time.time()
        collector.service.start()  # same config, same ports
        runs = _assert_runs_unchanged(w)

    # graphai: one warning per signal for the whole outage; the SDK logged every failure
    err = w.stderr.read_text()
    graphai = re.findall(r" WARNING graphai (telemetry\.export_failed .*)", err)
    assert sorted(graphai) == [
        "telemetry.export_failed signal='metrics' exporter='OTLPMetricExporter' failures=1",
        "telemetry.export_failed signal='traces' exporter='OTLPSpanExporter' failures=1",
    ], graphai
    sdk = {s: err.count(f"ERROR {SDK_LOGGER} Failed to export {s}") for s in ("traces", "metrics")}
    # each signal failed, and more often in all than graphai's two lines say (rate-limited)
    assert min(sdk.values()) >= 1 and sum(sdk.values()) > len(graphai), (sdk, err[-3000:])

    # traces: lost exactly for runs that ended during the outage (plus the reconnect)
    window = (t_stop - BATCH_S, t_restart + RECONNECT_S)
    after = {r["trace_id"] for r in runs if r["t_end"] > window[1]}
    assert len(after) >= 5, len(after)
    stored = poll(lambda: (c := _complete(jaeger, service)) >= after and c, DELIVERY_TIMEOUT_S,
                  interval=0.5, what="every run after the outage stored in Jaeger")  # fmt: skip
    lost = [r for r in runs if r["trace_id"] not in stored]
    assert lost, "an outage of several seconds loses the spans of the runs in it"
    outside = [r["i"] for r in lost if not window[0] <= r["t_end"] <= window[1]]
    assert outside == [], (outside, window)

    # metrics: the restarted Collector has every run (cumulative temporality)
    def all_counted() -> bool:
        counts = _collector_series(collector, collector.metrics_url,
                                   "graphai_graph_duration_seconds_count")  # fmt: skip
        return sum(v for k, v in counts.items() if f'job="{service}"' in k) == N_RUNS

    poll(all_counted, DELIVERY_TIMEOUT_S, interval=0.5, what=f"{N_RUNS} runs counted after restart")
    # every failed export counted (the log line above was one per signal), delivered with the
    # metrics once the Collector is back
    failures = {k: v for k, v in _collector_series(
        collector, collector.metrics_url, "graphai_telemetry_export_failures_total").items()
        if f'job="{service}"' in k}  # fmt: skip
    by_signal = {s: sum(v for k, v in failures.items() if f'signal="{s}"' in k)
                 for s in ("traces", "metrics")}  # fmt: skip
    # every failed export the SDK logged is counted (the counter never says less)
    assert all(by_signal[s] >= sdk[s] for s in sdk), (by_signal, sdk)
    # span metrics are the Collector's own state: the restarted one counts only the spans it
    # received, i.e. the stored runs that ended after the stop (give or take the last batch)
    spans = _collector_series(collector, collector.metrics_url, "traces_span_metrics_calls_total")
    tool = sum(v for k, v in spans.items()
               if f'job="{service}"' in k and f'graphai_node_name="{TOOL_NODE}"' in k)  # fmt: skip
    kept = [r for r in runs if r["trace_id"] in stored]
    late = len([r for r in kept if r["t_end"] > t_stop])
    assert late <= tool <= len([r for r in kept if r["t_end"] > t_stop - BATCH_S]), (tool, late)
    assert tool < N_RUNS


def test_jaeger_down_mid_run_is_buffered_by_the_collector_and_delivered(
    collector: Collector, jaeger: Jaeger, tmp_path: Path
) -> None:
    service = "graphai-fault-jaeger"
    with _start(tmp_path, collector, service) as w:
        _await_first_runs(w)
        t_stop = time.time()
        jaeger.service.stop()
        time.sleep(OUTAGE_S["jaeger"])
        assert w.proc.poll() is None and len(w.runs()) < N_RUNS - 20, "outage must be mid-run"
        jaeger.service.start()  # same ports, empty in-memory storage
        runs = _assert_runs_unchanged(w)

    # graphai: the Collector took everything; nothing failed on the app's side
    err = w.stderr.read_text()
    assert "telemetry.export_failed" not in err and SDK_LOGGER not in err, err[-3000:]

    # the Collector: every span sent once Jaeger was back, none given up, failures logged
    def sent() -> float:
        series = _collector_series(collector, collector.telemetry_url, "otelcol_exporter_sent_spans")
        return sum(v for k, v in series.items() if 'exporter="otlp_grpc/jaeger"' in k)

    poll(lambda: sent() == RUN_SPANS * N_RUNS, DELIVERY_TIMEOUT_S, interval=0.5,
         what=f"the Collector sent {RUN_SPANS * N_RUNS} spans to Jaeger")  # fmt: skip
    failed = _collector_series(collector, collector.telemetry_url,
                               "otelcol_exporter_send_failed_spans")  # fmt: skip
    assert sum(failed.values()) == 0, failed
    retries = collector.log.read_text().count("Exporting failed. Will retry the request after")
    assert retries >= 1

    # the restarted Jaeger holds every run that started during the outage, whole
    during = {r["trace_id"] for r in runs if r["t_start"] > t_stop}
    assert len(during) >= 20, len(during)
    poll(lambda: during <= _complete(jaeger, service), DELIVERY_TIMEOUT_S, interval=0.5,
         what="every run of the outage in the restarted Jaeger")  # fmt: skip
