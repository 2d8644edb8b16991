"""
The report after the runs: a run summary, trace waterfalls built from the recorded spans and
a metrics summary scraped from the Prometheus ``/metrics`` endpoint (with latency quantiles).
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from graphai._demo.sim import SERVICE_NAME, RunResult, build_order
from graphai._demo.telemetry import Telemetry
from graphai._demo.view import Out, fmt_s
from graphai.telemetry import names as N

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan


# -- Prometheus text ------------------------------------------------------------------------------
Labels = tuple[tuple[str, str], ...]


def scrape(url: str, timeout: float = 5.0) -> dict[str, dict[Labels, float]]:
    """``{sample name: {labels: value}}`` from a Prometheus text endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode("utf-8")
    samples: dict[str, dict[Labels, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = float(s.value)
    return samples


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile`` over ``(le, cumulative count)`` pairs."""
    bs = sorted(buckets)
    if not bs or bs[-1][1] <= 0:
        return None
    rank = q * bs[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in bs:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


class Histo:
    """The series of one Prometheus histogram, grouped by a subset of labels."""

    def __init__(self, samples: dict[str, dict[Labels, float]], base: str) -> None:
        self.base = base
        self.buckets = samples.get(base + "_bucket", {})
        self.counts = samples.get(base + "_count", {})
        self.sums = samples.get(base + "_sum", {})

    def group(self, keys: Sequence[str]) -> dict[tuple[str, ...], dict[str, Any]]:
        out: dict[tuple[str, ...], dict[str, Any]] = {}

        def key_of(labels: Labels) -> tuple[str, ...]:
            d = dict(labels)
            return tuple(d.get(k, "") for k in keys)

        for labels, v in self.counts.items():
            g = out.setdefault(key_of(labels), {"count": 0.0, "sum": 0.0, "le": {}})
            g["count"] += v
        for labels, v in self.sums.items():
            out.setdefault(key_of(labels), {"count": 0.0, "sum": 0.0, "le": {}})["sum"] += v
        for labels, v in self.buckets.items():
            le = float(dict(labels).get("le", "+Inf"))
            g = out.setdefault(key_of(labels), {"count": 0.0, "sum": 0.0, "le": {}})
            g["le"][le] = g["le"].get(le, 0.0) + v
        return out

    @staticmethod
    def mean(g: dict[str, Any]) -> float | None:
        return g["sum"] / g["count"] if g["count"] else None

    @staticmethod
    def p(g: dict[str, Any], q: float) -> float | None:
        """Quantile estimated from the buckets; ``None`` below 5 observations."""
        if g["count"] < 5:
            return None
        return histogram_quantile(q, g["le"].items())


# prometheus label names of the attribute keys
_L_GRAPH = N.GRAPH_NAME.replace(".", "_")
_L_NODE = N.NODE_NAME.replace(".", "_")
_L_KIND = N.NODE_KIND.replace(".", "_")
_L_NODE_OUTCOME = N.NODE_OUTCOME.replace(".", "_")
_L_RUN_OUTCOME = N.RUN_OUTCOME.replace(".", "_")


def _prom(metric: str) -> str:
    return N.METRICS[metric][4]


def render_metrics(out: Out, samples: dict[str, dict[Labels, float]], url: str) -> None:
    g = out.g
    out.line(out.bold("Metrics") + out.dim(f"  (scraped from {url}; p95 estimated from the buckets, from 5 runs on)"))
    runs = Histo(samples, _prom(N.GRAPH_DURATION)).group([_L_GRAPH, _L_RUN_OUTCOME])
    ttft = Histo(samples, _prom(N.GRAPH_TTFT)).group([_L_GRAPH])
    for (graph_name, outcome), grp in sorted(runs.items()):
        t = ttft.get((graph_name,))
        line = (
            f"  graph {out.bold(graph_name)}  runs {grp['count']:.0f} {outcome}"
            f"  {g['dot']} duration mean {fmt_s(Histo.mean(grp))}, p95 {fmt_s(Histo.p(grp, 0.95))}"
        )
        if t is not None:
            line += f"  {g['dot']} time to first token mean {fmt_s(Histo.mean(t))}"
        out.line(line)
    nodes = Histo(samples, _prom(N.NODE_DURATION)).group([_L_NODE, _L_KIND])
    n_ttft = Histo(samples, _prom(N.NODE_TTFT)).group([_L_NODE])
    n_rate = Histo(samples, _prom(N.NODE_TOKEN_RATE)).group([_L_NODE])
    toks = {
        dict(k).get(_L_NODE, ""): v for k, v in samples.get(_prom(N.NODE_TOKENS), {}).items()
    }
    if nodes:
        out.line(
            out.dim(
                f"  {'node':<16} {'kind':<7} {'runs':>5} {'mean':>8} {'p95':>8}"
                f" {'ttft':>8} {'tokens':>7} {'tok/s':>7}"
            )
        )
    order = [n for n in build_order() if any(k[0] == n for k in nodes)]
    order += sorted(k[0] for k in nodes if k[0] not in order)
    for name in order:
        for (node_name, kind), grp in nodes.items():
            if node_name != name:
                continue
            t = n_ttft.get((name,))
            r = n_rate.get((name,))
            tok = toks.get(name)
            out.line(
                f"  {name:<16} {kind:<7} {grp['count']:>5.0f} {fmt_s(Histo.mean(grp)):>8}"
                f" {fmt_s(Histo.p(grp, 0.95)):>8}"
                f" {fmt_s(Histo.mean(t) if t else None):>8}"
                f" {(f'{tok:.0f}' if tok else '-'):>7}"
                f" {(f'{Histo.mean(r):.1f}' if r and Histo.mean(r) else '-'):>7}"
            )
    genai = Histo(samples, _prom(N.GENAI_TTFC)).group([])
    delay = Histo(samples, _prom(N.DELIVERY_DELAY)).group([])
    extra = []
    gg = genai.get(())
    if gg and gg["count"]:
        extra.append(f"gen_ai time to first chunk mean {fmt_s(Histo.mean(gg))}")
    dd = delay.get(())
    if dd and dd["count"]:
        extra.append(
            f"callback delivery delay mean {fmt_s(Histo.mean(dd))} ({dd['count']:.0f} samples)"
        )
    if extra:
        out.line("  " + f" {g['dot']} ".join(extra))
    series = sum(len(v) for k, v in samples.items() if k.startswith(("graphai_", "gen_ai_")))
    out.line(out.dim(f"  {series} graphai_*/gen_ai_* samples; try: curl -s {url} | grep ^graphai_"))


# -- waterfall ------------------------------------------------------------------------------------
def _attr(span: ReadableSpan, key: str) -> Any:
    attrs = span.attributes
    return None if attrs is None else attrs.get(key)


def runs_from_spans(spans: Sequence[ReadableSpan]) -> list[tuple[ReadableSpan, list[ReadableSpan]]]:
    """``[(run span, node spans)]`` in start order."""
    by_trace: dict[int, list[ReadableSpan]] = {}
    for s in spans:
        if s.context is not None:
            by_trace.setdefault(s.context.trace_id, []).append(s)
    out = []
    for group in by_trace.values():
        roots = [s for s in group if s.name.startswith(N.RUN_SPAN_PREFIX + " ")]
        if len(roots) != 1:
            continue
        root = roots[0]
        nodes = [s for s in group if s is not root]
        nodes.sort(key=lambda s: (s.start_time or 0, s.name))
        out.append((root, nodes))
    out.sort(key=lambda r: r[0].start_time or 0)
    return out


def render_waterfall(out: Out, root: ReadableSpan, nodes: Sequence[ReadableSpan], title: str) -> None:
    g = out.g
    t0 = root.start_time or 0
    total = max((root.end_time or t0) - t0, 1)
    bar_w = max(20, min(48, out.width - 76))
    trace_id = format(root.context.trace_id, "032x") if root.context else "?"
    run_ttft = _attr(root, N.RUN_TTFT)
    head = [
        title,
        str(_attr(root, N.RUN_OUTCOME) or "?"),
        fmt_s(total / 1e9),
        f"ttft {fmt_s(run_ttft)}" if run_ttft is not None else "",
        f"{_attr(root, N.RUN_OUTPUT_TOKENS) or 0} tokens",
        f"{_attr(root, N.RUN_STEPS) or 0} steps",
    ]
    out.line(
        out.bold("Trace ")
        + out.dim(trace_id)
        + "  "
        + f" {g['dot']} ".join(h for h in head if h)
    )
    out.line(
        out.dim(
            f"  {'span':<30} {'start':>7} {'':<{bar_w}} {'dur':>7} {'ttft':>7} {'tok':>4} {'tok/s':>6}"
        )
    )
    for s in [root, *nodes]:
        start = (s.start_time or t0) - t0
        end = (s.end_time or s.start_time or t0) - t0
        ttft = _attr(s, N.GEN_AI_RESPONSE_TTFC)
        a = min(bar_w - 1, int(start / total * bar_w))
        b = max(a + 1, min(bar_w, round(end / total * bar_w)))
        f = a
        if isinstance(ttft, (int, float)):
            f = max(a, min(b, round((start + ttft * 1e9) / total * bar_w)))
        cells = (
            out.dim(g["bg"] * a)
            + out.paint(g["wait"] * (f - a), "33")
            + out.paint(g["bar"] * (b - f), "36" if s is not root else "35")
            + out.dim(g["bg"] * (bar_w - b))
        )
        name = s.name if s is root else "  " + s.name
        if len(name) > 30:
            name = name[:29] + g["ellipsis"][0]
        tokens = _attr(s, N.NODE_OUTPUT_TOKENS)
        tpot = _attr(s, N.NODE_TPOT)
        rate = f"{1 / tpot:.1f}" if isinstance(tpot, (int, float)) and tpot > 0 else ""
        outcome = _attr(s, N.NODE_OUTCOME if s is not root else N.RUN_OUTCOME)
        flag = "" if outcome in (None, N.OUTCOME_OK) else "  " + out.paint(str(outcome), "31")
        out.line(
            f"  {name:<30} {start / 1e9:>6.3f}s {cells} {fmt_s((end - start) / 1e9):>7}"
            f" {(fmt_s(ttft) if ttft is not None else ''):>7}"
            f" {(str(tokens) if tokens else ''):>4} {rate:>6}{flag}"
        )
    out.line(
        out.dim(
            f"  {g['wait']} waiting for the first token   {g['bar']} running / streaming"
            "   tok/s = 1 / mean gap between tokens"
        )
    )


# -- the report -----------------------------------------------------------------------------------
def render_report(out: Out, tel: Telemetry, results: Sequence[RunResult]) -> None:
    """Everything printed after the runs: run summary, waterfalls (or OTLP trace ids), metrics."""
    g = out.g
    if len(results) > 1:
        ok = sum(r.ok for r in results)
        secs = sorted(r.seconds for r in results)
        out.line()
        out.line(
            out.bold("Runs")
            + f"  {ok}/{len(results)} ok {g['dot']} median {fmt_s(secs[len(secs) // 2])} "
            f"{g['dot']} slowest {fmt_s(secs[-1])} {g['dot']} "
            f"{sum(r.tokens for r in results)} tokens streamed"
        )
    if tel.handle is None:
        return
    if tel.otlp and not tel.handle.force_flush(5.0):
        tel.export_stuck = True
        out.line(
            out.paint(
                f"OTLP export to {tel.otlp} did not finish within 5 s: is the collector "
                "running, and does the protocol match (OTEL_EXPORTER_OTLP_PROTOCOL)?",
                "33",
            )
        )
    spans = list(tel.exporter.get_finished_spans()) if tel.exporter is not None else []
    traced = runs_from_spans(spans)
    out.line()
    if tel.otlp:
        ids = [format(r.context.trace_id, "032x") for r, _ in traced if r.context is not None]
        out.line(
            out.bold("Traces")
            + f"  {len(ids)} sent over OTLP to {tel.otlp} (service {SERVICE_NAME}); "
            "look them up by trace id:"
        )
        for tid in ids[:5]:
            out.line(f"  {tid}")
        if len(ids) > 5:
            out.line(out.dim(f"  {g['ellipsis']} and {len(ids) - 5} more"))
    elif traced:
        picks: list[tuple[str, tuple[ReadableSpan, list[ReadableSpan]]]] = [
            ("first run", traced[0])
        ]
        if len(traced) > 1:
            slowest = max(traced, key=lambda r: (r[0].end_time or 0) - (r[0].start_time or 0))
            if slowest is not traced[0]:
                picks.append(("slowest run", slowest))
            out.line(out.dim(f"{len(traced)} traces recorded; showing {len(picks)}"))
        for title, (root, nodes) in picks:
            render_waterfall(out, root, nodes, title)
            out.line()
    else:
        out.line(out.dim("no spans recorded"))
    if tel.metrics_url:
        try:
            samples = scrape(tel.metrics_url)
        except (OSError, urllib.error.URLError) as exc:
            out.line(out.paint(f"could not scrape {tel.metrics_url}: {exc}", "33"))
        else:
            if tel.otlp:
                out.line()
            render_metrics(out, samples, tel.metrics_url)
