"""
Prometheus recording and alerting rules for graphai, built from one set of parameters.

``PRODUCTION`` writes ``alerts/graphai-alerts.yml``; ``FAST_TEST`` writes
``alerts/graphai-alerts.fast-test.yml`` with the same expressions, thresholds, labels and
annotations and only the windows and ``for:`` durations shortened (live tests need an alert to
fire within a minute). Every threshold is a field below and is documented in
docs/operations.md ("Alert parameters").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from _metrics import (
    EXPORT_FAILURES,
    EXPORT_SIGNAL,
    GRAPH,
    GRAPH_DURATION,
    GRAPH_TTFT,
    JOB,
    LABEL_OVERFLOW,
    NODE,
    NODE_DURATION,
    NODE_OUTCOME,
    NODE_TOKEN_RATE,
    OVERFLOW_ATTRIBUTE,
    STREAM_STALLED,
    TTFT_BUCKETS,
)
from _promql import Scope, number, on

BY_GRAPH = (JOB, GRAPH)
BY_NODE = (JOB, GRAPH, NODE)


@dataclass(frozen=True)
class TtftSlo:
    """Multi-window, multi-burn-rate alerts on "runs whose first token came within
    ``threshold_s``" (Google SRE Workbook, chapter 5; factors assume a 30-day budget)."""

    threshold_s: float = 1.0  # must be a TTFT bucket edge
    objective: float = 0.99
    fast_burn: float = 14.4  # 2 % of a 30-day budget in 1 h -> page
    fast_long: str = "1h"
    fast_short: str = "5m"
    fast_for: str = "2m"
    slow_burn: float = 6.0  # 5 % of a 30-day budget in 6 h -> ticket
    slow_long: str = "6h"
    slow_short: str = "30m"
    slow_for: str = "15m"
    min_run_rate: float = 0.1  # runs/s over the long window, or no alert (quiet graphs)


@dataclass(frozen=True)
class Throughput:
    min_tokens_per_s: float = 5.0  # p50 of graphai_node_output_token_rate_per_second
    window: str = "5m"
    for_: str = "10m"
    min_observation_rate: float = 0.05  # token-rate observations/s, or no alert


@dataclass(frozen=True)
class Stalls:
    for_: str = "2m"


@dataclass(frozen=True)
class NodeErrors:
    max_ratio: float = 0.05
    window: str = "5m"
    for_: str = "10m"
    min_run_rate: float = 0.05  # node runs/s, or no alert


@dataclass(frozen=True)
class ExportFailures:
    # the expression stays true for `window` after the last failure, so an outage shorter than
    # for_ - window (10 min: a Collector restart, a rollout) never fires; a lasting one fires
    # after for_
    window: str = "5m"
    for_: str = "15m"


@dataclass(frozen=True)
class Params:
    selector: str = ""  # extra matchers on every raw series, e.g. 'job="my-app"'
    runbook_base: str = "docs/operations.md"
    ttft: TtftSlo = field(default_factory=TtftSlo)
    throughput: Throughput = field(default_factory=Throughput)
    stalls: Stalls = field(default_factory=Stalls)
    node_errors: NodeErrors = field(default_factory=NodeErrors)
    export_failures: ExportFailures = field(default_factory=ExportFailures)


PRODUCTION = Params()
FAST_TEST = replace(
    PRODUCTION,
    ttft=replace(
        PRODUCTION.ttft,
        fast_long="1m",
        fast_short="10s",
        fast_for="5s",
        slow_long="2m",
        slow_short="30s",
        slow_for="10s",
    ),
    throughput=replace(PRODUCTION.throughput, window="20s", for_="5s"),
    stalls=replace(PRODUCTION.stalls, for_="3s"),
    node_errors=replace(PRODUCTION.node_errors, window="20s", for_="5s"),
    export_failures=replace(PRODUCTION.export_failures, window="20s", for_="5s"),
)


# -- recording rule names ---------------------------------------------------------------------
def ttft_errors(window: str) -> str:
    return f"job_graph:graphai_ttft_slo_errors:ratio_rate{window}"


def graph_runs(window: str) -> str:
    return f"job_graph:{GRAPH_DURATION}_count:rate{window}"


def token_rate_p50(window: str) -> str:
    return f"job_graph_node:{NODE_TOKEN_RATE}:p50_rate{window}"


def token_rate_observations(window: str) -> str:
    return f"job_graph_node:{NODE_TOKEN_RATE}_count:rate{window}"


def node_runs(window: str) -> str:
    return f"job_graph_node:{NODE_DURATION}_count:rate{window}"


def node_errors(window: str) -> str:
    return f"job_graph_node:graphai_node_errors:ratio_rate{window}"


def _recording(p: Params) -> list[dict[str, Any]]:
    s = Scope(p.selector)
    t = p.ttft
    if t.threshold_s not in TTFT_BUCKETS:
        raise ValueError(
            f"TtftSlo.threshold_s={t.threshold_s} is not a TTFT bucket edge {TTFT_BUCKETS}; "
            "the SLI needs a bucket at the threshold"
        )
    rules: dict[str, str] = {}
    for w in (t.fast_short, t.fast_long, t.slow_short, t.slow_long):
        rules[ttft_errors(w)] = f"1 - (\n  {s.below(GRAPH_TTFT, t.threshold_s, BY_GRAPH, w)}\n)"
    for w in (t.fast_long, t.slow_long):
        rules[graph_runs(w)] = s.sum_rate(f"{GRAPH_DURATION}_count", labels=BY_GRAPH, window=w)
    w = p.throughput.window
    rules[token_rate_p50(w)] = s.quantile(0.5, NODE_TOKEN_RATE, BY_NODE, w)
    rules[token_rate_observations(w)] = s.sum_rate(
        f"{NODE_TOKEN_RATE}_count", labels=BY_NODE, window=w
    )
    w = p.node_errors.window
    rules[node_runs(w)] = s.sum_rate(f"{NODE_DURATION}_count", labels=BY_NODE, window=w)
    rules[node_errors(w)] = s.share(f"{NODE_DURATION}_count", f'{NODE_OUTCOME}="error"', BY_NODE, w)
    return [{"record": name, "expr": expr} for name, expr in rules.items()]


def _alert(
    p: Params, name: str, expr: str, for_: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": f"{p.runbook_base}#{name.lower()}",
    }
    return rule


def _burn(p: Params, speed: str) -> dict[str, Any]:
    t = p.ttft
    fast = speed == "fast"
    burn, long_w, short_w, for_ = (
        (t.fast_burn, t.fast_long, t.fast_short, t.fast_for)
        if fast
        else (t.slow_burn, t.slow_long, t.slow_short, t.slow_for)
    )
    limit = number(burn * (1 - t.objective))
    budget = f"{number((1 - t.objective) * 100)} %"
    return _alert(
        p,
        f"GraphaiTTFTErrorBudget{'Fast' if fast else 'Slow'}Burn",
        f"{ttft_errors(long_w)} > {limit}\n"
        f"and {ttft_errors(short_w)} > {limit}\n"
        f"and {on(BY_GRAPH)} {graph_runs(long_w)} >= {number(t.min_run_rate)}",
        for_,
        "critical" if fast else "warning",
        "Graph {{ $labels.graphai_graph_name }} is burning its time-to-first-token error budget "
        + ("fast" if fast else "steadily"),
        f"{{{{ $value | humanizePercentage }}}} of runs of graph {{{{ $labels.graphai_graph_name }}}} "
        f"(job {{{{ $labels.job }}}}) waited more than {t.threshold_s:g} s for the first token "
        f"over the last {long_w} (and over the last {short_w}); the SLO allows {budget}, so the "
        f"error budget burns more than {number(burn)}x faster than sustainable.",
    )


def _alerts(p: Params) -> list[dict[str, Any]]:
    tp, ne, ef = p.throughput, p.node_errors, p.export_failures
    node_ref = (
        "node {{ $labels.graphai_node_name }} of graph {{ $labels.graphai_graph_name }} "
        "(job {{ $labels.job }})"
    )
    return [
        _burn(p, "fast"),
        _burn(p, "slow"),
        _alert(
            p,
            "GraphaiStreamingThroughputLow",
            f"{token_rate_p50(tp.window)} < {number(tp.min_tokens_per_s)}\n"
            f"and {token_rate_observations(tp.window)} >= {number(tp.min_observation_rate)}",
            tp.for_,
            "warning",
            "Node {{ $labels.graphai_node_name }} streams tokens slowly",
            f'The median token rate of {node_ref} is {{{{ $value | printf "%.2f" }}}} tokens/s, '
            f"below {number(tp.min_tokens_per_s)} tokens/s for {tp.for_}.",
        ),
        _alert(
            p,
            "GraphaiStreamStalled",
            # sum, not max: the gauge counts streams per worker process; the alert (and its
            # "N stream(s)") is about the node across every instance of the job
            f"sum by ({', '.join(BY_NODE)}) ({Scope(p.selector).sel(STREAM_STALLED)}) > 0",
            p.stalls.for_,
            "warning",
            "Streams of node {{ $labels.graphai_node_name }} are stalled",
            f"{{{{ $value }}}} stream(s) of {node_ref} have produced no token for longer than "
            f"GRAPHAI_STALL_AFTER_S, continuously for {p.stalls.for_}.",
        ),
        _alert(
            p,
            "GraphaiNodeErrorRatioHigh",
            f"{node_errors(ne.window)} > {number(ne.max_ratio)}\n"
            f"and {node_runs(ne.window)} >= {number(ne.min_run_rate)}",
            ne.for_,
            "warning",
            "Node {{ $labels.graphai_node_name }} fails often",
            f"{{{{ $value | humanizePercentage }}}} of the runs of {node_ref} ended in an error "
            f"over the last {ne.window}, above {number(ne.max_ratio * 100)} % for {ne.for_}.",
        ),
        _alert(
            p,
            "GraphaiTelemetryLabelOverflow",
            # max, not sum: every worker folds the same values, so a sum would multiply the
            # count by the number of workers
            f"max by ({JOB}, {OVERFLOW_ATTRIBUTE}) ({Scope(p.selector).sel(LABEL_OVERFLOW)}) > 0",
            "",
            "info",
            "graphai folds {{ $labels.attribute }} values into _OTHER",
            "Job {{ $labels.job }} has more distinct {{ $labels.attribute }} values than "
            "GRAPHAI_METRICS_LABEL_LIMIT allows; {{ $value }} value(s) were recorded as _OTHER "
            "since the process started, so per-name panels and alerts miss them.",
        ),
        _alert(
            p,
            "GraphaiTelemetryExportFailing",
            # sum over instances: each worker exports on its own; any failing one counts
            f"sum by ({JOB}, {EXPORT_SIGNAL}) "
            f"(increase({Scope(p.selector).sel(EXPORT_FAILURES)}[{ef.window}])) > 0",
            ef.for_,
            "warning",
            "graphai cannot export {{ $labels.signal }}",
            "Job {{ $labels.job }} failed {{ $value | printf \"%.0f\" }} OTLP export(s) of "
            f"{{{{ $labels.signal }}}} over the last {ef.window}, continuously for {ef.for_}: "
            "the Collector (or the OTLP endpoint) is down or refusing, so traces or metrics "
            "are being lost. The graphs themselves are not affected.",
        ),
    ]


def rule_groups(p: Params) -> dict[str, Any]:
    # One group: its rules run in order in one evaluation, so each alert sees the recordings of
    # the same cycle (separate groups run on their own timers, one cycle apart at random).
    return {"groups": [{"name": "graphai", "rules": [*_recording(p), *_alerts(p)]}]}
