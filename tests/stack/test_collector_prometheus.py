"""
The Collector path into the real Prometheus, for one planned workload (tests/stack/conftest.py
``planned_stack``): Prometheus scrapes the Collector's prometheus exporter (job = the app's
service.name) and, as job ``graphai-inprocess``, the same process's own /metrics.

- the span metrics the Collector computes from every span (span_metrics connector, before
  Jaeger samples) count exactly what graphai's own metrics count: runs, node calls, errors;
- every dashboard query (generated from dashboards/) returns data through the Collector path;
- the series names through the Collector equal those of the in-process /metrics (plus the
  span metrics, and nothing else).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from graphai.telemetry import names as N
from tests._tools import poll
from tests.ops._ops import dashboards, queries, series_names, substitute
from tests.stack._workload import GRAPH_NAME, RUN_SPANS, STREAM_NODE, TOOL_NODE
from tests.stack.conftest import (
    INPROCESS_JOB,
    N_FAIL,
    N_FAST,
    N_SLOW,
    SERVICE,
    PlannedStack,
)

ARRIVE_TIMEOUT_S = 30.0
N_RUNS = N_FAST + N_SLOW + N_FAIL
SPAN_METRICS = "traces_span_metrics"  # the connector's namespace, as Prometheus names it
RUN_SPAN = f"{N.RUN_SPAN_PREFIX} {GRAPH_NAME}"
# Long windows: the workload's traffic lasts seconds and these tests may run a while after it
WINDOWS = {"__rate_interval": "1h", "__interval": "1m", "__range": "1h"}
ZERO_FALLBACK = " or on() vector(0)"  # dashboards/_promql.py
# Series Prometheus adds itself for a scrape job; with honor_labels they carry the scrape
# config's job, not the app's
SCRAPE_SERIES = re.compile(r"^(up|scrape_.*)$")


def _by(stack: PlannedStack, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1])
            for r in stack.prometheus.query(expr)}  # fmt: skip


def _settled(fn: Callable[[], Any], expected: Any, what: str) -> Any:
    """Poll ``fn`` until it returns ``expected`` (exported every second, scraped every second)."""

    def check() -> Any:
        got = fn()
        if got != expected:
            raise AssertionError(f"{what}: {got} != {expected}")
        return got or True

    return poll(check, ARRIVE_TIMEOUT_S, interval=0.5, what=what)


@pytest.mark.parametrize("job", [SERVICE, INPROCESS_JOB], ids=["collector", "in-process"])
def test_span_metrics_count_what_graphai_counts(planned_stack: PlannedStack, job: str) -> None:
    s = planned_stack
    sel = f'job="{SERVICE}", graphai_graph_name="{GRAPH_NAME}"'
    own = f'job="{job}", graphai_graph_name="{GRAPH_NAME}"'
    # runs: graphai's run duration histogram by outcome == run spans by status
    runs = {("ok",): N_FAST + N_SLOW, ("error",): N_FAIL}
    _settled(lambda: _by(s, f"sum by (graphai_run_outcome) "
                            f"(graphai_graph_duration_seconds_count{{{own}}})",
                         "graphai_run_outcome"), runs, f"graphai's runs ({job})")  # fmt: skip
    spans = {("STATUS_CODE_UNSET",): N_FAST + N_SLOW, ("STATUS_CODE_ERROR",): N_FAIL}
    _settled(lambda: _by(s, f'sum by (status_code) ({SPAN_METRICS}_calls_total'
                            f'{{{sel}, span_name="{RUN_SPAN}"}})', "status_code"),
             spans, "span metrics of run spans")  # fmt: skip
    # node calls and node errors: graphai's node duration histogram == node spans by status
    nodes = {(STREAM_NODE, "ok"): N_RUNS, (TOOL_NODE, "ok"): N_RUNS - N_FAIL,
             (TOOL_NODE, "error"): N_FAIL}  # fmt: skip
    _settled(lambda: _by(s, f"sum by (graphai_node_name, graphai_node_outcome) "
                            f"(graphai_node_duration_seconds_count{{{own}}})",
                         "graphai_node_name", "graphai_node_outcome"), nodes,
             f"graphai's node runs ({job})")  # fmt: skip
    status = {"ok": "STATUS_CODE_UNSET", "error": "STATUS_CODE_ERROR"}
    node_spans = {(n, status[o]): v for (n, o), v in nodes.items()}
    _settled(lambda: _by(s, f'sum by (graphai_node_name, status_code) ({SPAN_METRICS}_calls_total'
                            f'{{{sel}, graphai_node_name!=""}})',
                         "graphai_node_name", "status_code"), node_spans,
             "span metrics of node spans")  # fmt: skip
    # the span-duration histogram counts the same calls
    total = _by(s, f"sum({SPAN_METRICS}_duration_seconds_count{{{sel}}})")
    assert total == {(): float(RUN_SPANS * N_RUNS)}, total


def _dashboard_exprs() -> dict[str, str]:
    values = {"job": SERVICE, "graph": GRAPH_NAME, "node": ".*", **WINDOWS}
    exprs = {}
    for uid, panel, t in queries():
        name = f"{uid} / {panel['title']} / {t['refId']}"
        exprs[name] = substitute(t["expr"], values)
        if exprs[name].endswith(ZERO_FALLBACK):  # the real series too, not just the fallback 0
            exprs[f"{name} without fallback"] = exprs[name].removesuffix(ZERO_FALLBACK)
    return exprs


def _variables(job: str = SERVICE) -> dict[str, tuple[str, str]]:
    """``"<uid> $name" -> (selector, label)`` of every query variable, for scrape job ``job``."""
    values = {"job": job, "graph": GRAPH_NAME, "node": ".*", **WINDOWS}
    out = {}
    for d in dashboards().values():
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                m = re.fullmatch(r"label_values\((.*), (\w+)\)", substitute(v["query"], values))
                assert m, v["query"]
                out[f"{d['uid']} ${v['name']}"] = (m.group(1), m.group(2))
    return out


def test_every_dashboard_query_returns_data_through_the_collector(
    planned_stack: PlannedStack,
) -> None:
    s = planned_stack
    exprs = _dashboard_exprs()

    def all_return_data() -> bool:
        empty = [name for name, expr in exprs.items() if not s.prometheus.query(expr)]
        if empty:
            raise AssertionError(f"{len(empty)} of {len(exprs)} queries return nothing: {empty}")
        return True

    poll(all_return_data, ARRIVE_TIMEOUT_S, interval=1.0, what="every dashboard query has data")
    expected = {"job": SERVICE, "service": SERVICE, "graph": GRAPH_NAME, "node": STREAM_NODE}
    for name, (selector, label) in _variables().items():
        var = name.rpartition("$")[2]
        assert expected[var] in s.prometheus.label_values(label, selector), name
    for name, (selector, label) in _variables(INPROCESS_JOB).items():
        if name.endswith("$service"):  # the in-process path has it
            assert s.prometheus.label_values(label, selector) == [SERVICE], name


def test_service_variable_resolves_through_the_collector(planned_stack: PlannedStack) -> None:
    # the Collector's exporter puts service.name in job, not on target_info; the shipped
    # deploy/prometheus.yml copies it back to service_name (metric_relabel_configs), so the
    # dashboards' $service variable resolves on this path too
    s = planned_stack
    services = [_variables()[k] for k in _variables() if k.endswith("$service")]
    assert services
    for selector, label in services:
        assert SERVICE in s.prometheus.label_values(label, selector)


def _names(stack: PlannedStack, job: str) -> set[str]:
    return {r["metric"]["__name__"]
            for r in stack.prometheus.query(f'group by (__name__) ({{job="{job}"}})')}  # fmt: skip


def test_series_names_through_the_collector_equal_the_in_process_ones(
    planned_stack: PlannedStack,
) -> None:
    s = planned_stack
    contract = {spec[4] for spec in N.METRICS.values()}

    def graphai_names_in_both() -> tuple[set[str], set[str]]:
        collector, own = _names(s, SERVICE), {n for n in _names(s, INPROCESS_JOB)
                                               if not SCRAPE_SERIES.match(n)}  # fmt: skip
        bases = {re.sub(r"_(bucket|count|sum)$", "", n) for n in own} & contract
        if not bases or {n for n in collector if not n.startswith(SPAN_METRICS)} != own:
            raise AssertionError(f"only through the Collector: {sorted(collector - own)}; "
                                 f"only in-process: {sorted(own - collector)}")  # fmt: skip
        return collector, own

    collector, own = poll(graphai_names_in_both, ARRIVE_TIMEOUT_S, interval=1.0,
                          what="the same series names on both paths")  # fmt: skip
    assert collector - own == {f"{SPAN_METRICS}_calls_total", f"{SPAN_METRICS}_duration_seconds_bucket",
                               f"{SPAN_METRICS}_duration_seconds_count",
                               f"{SPAN_METRICS}_duration_seconds_sum"}  # fmt: skip
    # every series the dashboards read is among them
    used = {n for e in _dashboard_exprs().values() for n in series_names(e)}
    assert used <= own, sorted(used - own)
    assert "target_info" in own
