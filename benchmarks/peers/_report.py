"""
Tables of the peer benchmarks, from the combined document ``run.py`` builds (and keeps in
``RESULTS.json``). Standard library only; pure functions of that document, so a test can render
a fixed input.

A *cell* is one engine configuration on one measure, over all rounds::

    {"config": "ours", "label": "ours", "group": "plain" | "telemetry", "measure": "chain-10",
     "unit": "µs/node", "better": "lower", "rounds": [v1, v2, ...],
     "rounds_run_only": [...], "samples": 25, "spans_per_run": 11.0, "notes": ["..."]}

Ratios are paired by round (each round runs every configuration of a measure back to back,
in a rotating order), then summarised as the median and the range over rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

Cell = dict[str, Any]

REFERENCE = {"plain": "ours", "telemetry": "ours-otel"}
COST_PAIRS = (
    ("ours", "ours-otel", "ours"),
    ("langgraph-sdk", "langgraph-openllmetry", "OpenLLMetry"),
)


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "tokens/s":
        return (
            f"{v / 1e6:.2f} M"
            if v >= 1e6
            else f"{v / 1e3:.0f} k"
            if v >= 1e4
            else f"{v / 1e3:.1f} k"
        )
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_x(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.0f}×" if v >= 100 else f"{v:.1f}×" if v >= 10 else f"{v:.2f}×"


def median(vals: Sequence[float]) -> float | None:
    return statistics.median(vals) if vals else None


def value_range(vals: Sequence[float], unit: str) -> str:
    if len(vals) < 2:
        return "—"
    return f"{fmt(min(vals), unit)}–{fmt(max(vals), unit)}"


def speedups(ref: Cell, other: Cell, key: str = "rounds") -> list[float]:
    """How many times better ``ref`` is than ``other``, round by round (paired)."""
    out = []
    for a, b in zip(ref.get(key) or [], other.get(key) or [], strict=False):
        if a and b:
            out.append(a / b if ref["better"] == "higher" else b / a)
    return out


def ratio_text(vals: Sequence[float]) -> str:
    m = median(vals)
    if m is None:
        return "—"
    if len(vals) < 2:
        return fmt_x(m)
    return f"{fmt_x(m)} ({fmt_x(min(vals))}–{fmt_x(max(vals))})"


def _table(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _by(cells: Iterable[Cell]) -> dict[tuple[str, str], Cell]:
    return {(c["measure"], c["config"]): c for c in cells}


def _measures(cells: Sequence[Cell]) -> list[str]:
    return list(dict.fromkeys(c["measure"] for c in cells))


def measure_title(measure: str, unit: str) -> str:
    return f"{measure} ({unit})"


def engines_table(cells: Sequence[Cell], group: str, markdown: bool) -> str:
    """One row per configuration and measure: median over rounds, range, samples, and how many
    times better the group's reference (ours, or ours with telemetry) is, paired by round."""
    mine = [c for c in cells if c["group"] == group]
    by = _by(cells)
    telemetry = group == "telemetry"
    head = ["measure", "engine", "median", "range over rounds", "samples"]
    if telemetry:
        head += ["run only", "spans/run"]
    ref_name = "ours + OTel" if telemetry else "ours"
    head.append(f"{ref_name} is")
    rows = []
    for measure in _measures(mine):
        first = True
        for c in [c for c in mine if c["measure"] == measure]:
            ref = by.get((measure, REFERENCE[group]))
            unit = c["unit"]
            row = [
                measure_title(measure, unit) if first else "",
                c["label"],
                fmt(median(c["rounds"]), unit),
                value_range(c["rounds"], unit),
                str(c.get("samples", "")),
            ]
            if telemetry:
                row += [fmt(median(c.get("rounds_run_only") or []), unit), _spans(c)]
            if ref is None or ref is c:
                row.append("(reference)")
            else:
                row.append(ratio_text(speedups(ref, c)) + " better")
            rows.append(row)
            first = False
    return _table(head, rows, markdown)


def _spans(c: Cell) -> str:
    v = c.get("spans_per_run")
    return "—" if v is None else f"{v:.1f}" if v % 1 else f"{v:.0f}"


def scaling_table(cells: Sequence[Cell], markdown: bool) -> str:
    """µs per node on the longest chain ÷ on the shortest, per configuration."""
    chains = sorted(
        {c["measure"] for c in cells if c["measure"].startswith("chain-")},
        key=lambda m: int(m.split("-")[1]),
    )
    if len(chains) < 2:
        return ""
    lo, hi = chains[0], chains[-1]
    by = _by(cells)
    head = ["engine", f"{lo} µs/node", f"{hi} µs/node", f"{hi.split('-')[1]}/{lo.split('-')[1]}"]
    rows = []
    for config, label in dict.fromkeys(
        (c["config"], c["label"]) for c in cells if c["measure"] == lo
    ):
        a, b = by.get((lo, config)), by.get((hi, config))
        if not a or not b:
            continue
        per_round = [y / x for x, y in zip(a["rounds"], b["rounds"], strict=False) if x and y]
        ma, mb = median(a["rounds"]), median(b["rounds"])
        rows.append([label, fmt(ma, "µs"), fmt(mb, "µs"), _ratio_plain(per_round)])
    return _table(head, rows, markdown)


def _ratio_plain(vals: Sequence[float]) -> str:
    m = median(vals)
    if m is None:
        return "—"
    if len(vals) < 2:
        return f"{m:.2f}"
    return f"{m:.2f} ({min(vals):.2f}–{max(vals):.2f})"


def cost_table(cells: Sequence[Cell], markdown: bool) -> str:
    """What telemetry adds: (with − without) per node, per run or per token, round by round."""
    by = _by(cells)
    head = ["measure", "unit"] + [f"{name}: with − without" for _, _, name in COST_PAIRS]
    rows = []
    for measure in _measures(cells):
        row: list[str] = []
        for off, on, _ in COST_PAIRS:
            a, b = by.get((measure, off)), by.get((measure, on))
            row.append(_cost(a, b) if a and b else "—")
        if any(x != "—" for x in row):
            unit = "µs/token" if measure.startswith("stream") else by_unit(cells, measure)
            rows.append([measure, unit, *row])
    return _table(head, rows, markdown) if rows else ""


def by_unit(cells: Sequence[Cell], measure: str) -> str:
    return str(next(c["unit"] for c in cells if c["measure"] == measure))


def _cost(off: Cell, on: Cell) -> str:
    diffs = []
    for a, b in zip(off["rounds"], on["rounds"], strict=False):
        if a and b:
            diffs.append(1e6 / b - 1e6 / a if off["unit"] == "tokens/s" else b - a)
    m = median(diffs)
    if m is None:
        return "—"
    return (
        fmt(m, "µs")
        if len(diffs) < 2
        else f"{fmt(m, 'µs')} ({fmt(min(diffs), 'µs')}–{fmt(max(diffs), 'µs')})"
    )


def notes(cells: Sequence[Cell]) -> list[str]:
    """Each note once, with the engines and measures it applies to."""
    where: dict[str, tuple[dict[str, None], dict[str, None]]] = {}
    for c in cells:
        for n in c.get("notes", []):
            labels, ms = where.setdefault(n, ({}, {}))
            labels[c["label"]] = None
            ms[c["measure"]] = None
    return [f"{', '.join(ls)} [{', '.join(ms)}]: {n}" for n, (ls, ms) in where.items()]


def render(doc: dict[str, Any], markdown: bool = False) -> str:
    """All tables of a combined document, each under a heading."""
    cells: list[Cell] = doc["cells"]
    h = "### " if markdown else "== "
    parts = [f"{h}Engines without telemetry", engines_table(cells, "plain", markdown)]
    scaling = scaling_table([c for c in cells if c["group"] == "plain"], markdown)
    if scaling:
        parts += [f"{h}Chain scaling (µs per node, longest ÷ shortest chain)", scaling]
    if any(c["group"] == "telemetry" for c in cells):
        parts += [
            f"{h}With telemetry (the same OpenTelemetry SDK setup on both sides)",
            engines_table(cells, "telemetry", markdown),
        ]
        cost = cost_table(cells, markdown)
        if cost:
            parts += [f"{h}What the telemetry adds (paired by round)", cost]
    ns = notes(cells)
    if ns:
        parts += [f"{h}Notes", "\n".join(f"- {n}" for n in ns)]
    return "\n\n".join(parts) + "\n"
