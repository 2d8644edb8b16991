"""
PromQL builders shared by the dashboards and the rules: selector scoping, divide-by-zero-safe
ratios (vLLM's ``divide``), quantiles that stay empty instead of NaN when a histogram is idle.
"""

from __future__ import annotations

from collections.abc import Sequence

RATE = "$__rate_interval"

# Appended to gauge/counter panels whose series exist only once something happened (a stalled
# stream, an overflowing label): the panel then shows 0 rather than "No data". Tests strip it to
# check the real series.
ZERO_FALLBACK = " or on() vector(0)"


def le_matcher(bound: float) -> str:
    """Match a bucket edge however the exporter spelled it: ``1`` (Go, and Python when the bucket
    list holds an int) or ``1.0`` (Python with a float)."""
    text = f"{bound:g}"
    if "." in text or "e" in text:
        return f'le="{text}"'
    return f'le=~"{text}(\\\\.0)?"'


def number(x: float) -> str:
    """A threshold as PromQL text, without float noise (``14.4 * 0.01`` -> ``0.144``)."""
    return f"{round(x, 9):g}"


def by(labels: Sequence[str]) -> str:
    return f" by ({', '.join(labels)})" if labels else ""


def on(labels: Sequence[str]) -> str:
    return f"on ({', '.join(labels)})"


def divide(numerator: str, denominator: str) -> str:
    """``numerator / denominator``, dropping series whose denominator is zero (no NaN)."""
    return f"{numerator} / ({denominator} > 0)"


class Scope:
    """PromQL snippets restricted by label matchers (template variables on dashboards, the
    deployment's selector in rules)."""

    def __init__(self, *matchers: str) -> None:
        self.matchers = tuple(m for m in matchers if m)

    def narrow(self, *matchers: str) -> Scope:
        return Scope(*self.matchers, *matchers)

    def sel(self, metric: str, *matchers: str) -> str:
        ms = ", ".join((*self.matchers, *matchers))
        return f"{metric}{{{ms}}}" if ms else metric

    def rate(self, metric: str, *matchers: str, window: str = RATE) -> str:
        return f"rate({self.sel(metric, *matchers)}[{window}])"

    def sum_rate(
        self, metric: str, *matchers: str, labels: Sequence[str] = (), window: str = RATE
    ) -> str:
        return f"sum{by(labels)} ({self.rate(metric, *matchers, window=window)})"

    def agg(self, op: str, metric: str, *matchers: str, labels: Sequence[str] = ()) -> str:
        return f"{op}{by(labels)} ({self.sel(metric, *matchers)})"

    def share(self, metric: str, matcher: str, labels: Sequence[str], window: str = RATE) -> str:
        """The share of ``metric``'s rate from series matching ``matcher``; 0 (not absent) when
        none match, absent when there is no traffic at all."""
        whole = self.sum_rate(metric, labels=labels, window=window)
        part = self.sum_rate(metric, matcher, labels=labels, window=window)
        return divide(f"({part} or {whole} * 0)", whole)

    def below(self, histogram: str, bound: float, labels: Sequence[str], window: str = RATE) -> str:
        """The share of observations at or below ``bound`` (a bucket edge)."""
        good = self.sum_rate(f"{histogram}_bucket", le_matcher(bound), labels=labels, window=window)
        return divide(good, self.sum_rate(f"{histogram}_count", labels=labels, window=window))

    def quantile(self, q: float, histogram: str, labels: Sequence[str], window: str = RATE) -> str:
        """``histogram_quantile`` over groups that saw observations in the window (idle groups
        are absent, not NaN)."""
        buckets = self.sum_rate(f"{histogram}_bucket", labels=("le", *labels), window=window)
        seen = self.sum_rate(f"{histogram}_count", labels=labels, window=window)
        return f"histogram_quantile({number(q)}, {buckets} and {on(labels)} ({seen} > 0))"

    def bucket_increase(self, histogram: str, window: str = RATE) -> str:
        """Per-bucket increase, for heatmap panels (format=heatmap)."""
        return f"sum by (le) (increase({self.sel(f'{histogram}_bucket')}[{window}]))"
