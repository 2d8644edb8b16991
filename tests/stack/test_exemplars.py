"""
Exemplars, with Prometheus' exemplar storage on (``--enable-feature=exemplar-storage``) and
OpenMetrics scraping (``planned_stack``):

- through the Collector (prometheus exporter with ``enable_open_metrics: true``), the run-level
  TTFT histogram's samples carry the trace id and span id of a run, with that run's TTFT as
  value, and the id resolves in Jaeger exactly when tail sampling kept that trace: always for a
  slow run, for a fast one only when the hash picked it (an exemplar can point at a trace that
  sampling dropped);
- graphai's in-process /metrics serves OpenMetrics when asked but without exemplars (the
  Python Prometheus exporter has none), so Prometheus stores none for it.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from graphai.telemetry import names as N
from tests._tools import poll
from tests.stack.conftest import INPROCESS_JOB, SERVICE, PlannedStack, load_jaeger_config, policy
from tests.stack.test_tail_sampling import THRESHOLD_S, probabilistic_keeps

TTFT_SERIES = N.METRICS[N.GRAPH_TTFT][4] + "_bucket"
DURATION_SERIES = N.METRICS[N.GRAPH_DURATION][4] + "_bucket"
OPENMETRICS = "application/openmetrics-text;version=1.0.0"
ARRIVE_TIMEOUT_S = 30.0


def _exemplars(stack: PlannedStack, expr: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(series labels, exemplar) pairs over the last hour."""
    now = time.time()
    data = stack.prometheus.api("query_exemplars", query=expr, start=str(now - 3600),
                                end=str(now))  # fmt: skip
    return [(dict(s["seriesLabels"]), e) for s in data for e in s["exemplars"]]


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def test_ttft_exemplars_are_runs_and_resolve_in_jaeger_when_sampling_kept_them(
    planned_stack: PlannedStack,
) -> None:
    s = planned_stack
    runs = {r["trace_id"]: r for r in s.runs}
    rest = policy(load_jaeger_config(), "sample-rest")["probabilistic"]

    def with_a_slow_run() -> list[tuple[dict[str, str], dict[str, Any]]]:
        found = _exemplars(s, f'{TTFT_SERIES}{{job="{SERVICE}"}}')
        return found if any(float(e["value"]) > THRESHOLD_S for _, e in found) else []

    found = poll(with_a_slow_run, ARRIVE_TIMEOUT_S, interval=1.0,
                 what="TTFT exemplars, one of them above the threshold")  # fmt: skip
    s.await_sampling_decisions()
    resolved = 0
    for labels, ex in found:
        trace_id, value = ex["labels"]["trace_id"], float(ex["value"])
        run = runs[trace_id]  # a planned run's trace, nothing else
        assert value == run["ttft"], (ex, run["ttft"])  # the run span's TTFT attribute
        le = float(labels["le"])  # the bucket the value falls in
        assert max((b for b in N.TTFT_BUCKETS if b < le), default=0.0) < value <= le, (labels, ex)
        kept = run["kind"] in ("slow", "fail") or probabilistic_keeps(
            trace_id, rest["hash_salt"], rest["sampling_percentage"])
        if kept:  # stored within a batch interval of the decision
            trace = poll(lambda t=trace_id: s.jaeger.trace(t), ARRIVE_TIMEOUT_S, interval=0.5,
                         what=f"kept trace {trace_id} in Jaeger")  # fmt: skip
        else:
            trace = s.jaeger.trace(trace_id)
            assert trace is None, (run["kind"], trace_id)
        if trace is not None:
            (root,) = [sp for sp in trace["spans"] if sp["spanID"] == ex["labels"]["span_id"]]
            assert root["operationName"].startswith(N.RUN_SPAN_PREFIX)
            assert _tags(root)[N.RUN_TTFT] == value
            resolved += 1
    assert resolved >= 1
    # run durations carry exemplars of the runs too
    durations = _exemplars(s, f'{DURATION_SERIES}{{job="{SERVICE}"}}')
    assert durations and {e["labels"]["trace_id"] for _, e in durations} <= set(runs) | {
        s.overflow_trace}  # fmt: skip


def test_in_process_metrics_have_no_exemplars(planned_stack: PlannedStack) -> None:
    s = planned_stack
    url = f"http://{s.metrics_addr}/metrics"
    req = urllib.request.Request(url, headers={"Accept": OPENMETRICS})
    with urllib.request.urlopen(req, timeout=5) as resp:
        ctype, text = resp.headers["Content-Type"], resp.read().decode()
    assert ctype.startswith("application/openmetrics-text"), ctype
    assert f"{TTFT_SERIES}{{" in text and text.rstrip().endswith("# EOF")
    assert " # {" not in text  # OpenMetrics' exemplar syntax
    # Prometheus scraped both jobs in the same way; it holds exemplars for one of them only
    poll(lambda: _exemplars(s, f'{TTFT_SERIES}{{job="{SERVICE}"}}'), ARRIVE_TIMEOUT_S,
         interval=1.0, what="exemplars through the Collector")  # fmt: skip
    assert _exemplars(s, f'{{job="{INPROCESS_JOB}"}}') == []
