"""
``docs/telemetry.md`` is the reference of every name in ``graphai/telemetry/names.py`` and
``graphai/telemetry/env.py``: each constant's value appears there (in code formatting), each
metric's row carries its unit and Prometheus series, each bucket set is listed exactly, and
the page names no ``graphai.*`` attribute or ``graphai_*`` series that the code does not have.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from graphai.telemetry import env, names

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "telemetry.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def code_spans(doc: str) -> list[str]:
    """Inline code (`...`) and fenced code blocks."""
    fenced = re.findall(r"```[a-z]*\n(.*?)```", doc, re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", doc, flags=re.S))
    return inline + fenced


def _constants(module: Any) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(module).items()
        if k.isupper() and not k.startswith("_") and isinstance(v, (str, int, float, tuple))
    }


def _in_code(value: str, spans: list[str]) -> bool:
    pat = re.compile(rf"(?<![\w.]){re.escape(value)}(?![\w])")
    return any(pat.search(s) for s in spans)


def test_every_string_constant_is_documented(code_spans: list[str]) -> None:
    missing = []
    for module in (names, env):
        for key, value in _constants(module).items():
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if isinstance(v, str) and not _in_code(v, code_spans):
                    missing.append(f"{module.__name__}.{key} = {v!r}")
    assert not missing, "not in docs/telemetry.md (as code):\n" + "\n".join(missing)


def test_every_metric_row_has_unit_and_prometheus_name(doc: str) -> None:
    rows = [line for line in doc.splitlines() if line.startswith("|")]
    for name, (kind, unit, _desc, _buckets, prom) in names.METRICS.items():
        row = [r for r in rows if f"| `{name}` |" in r and f"`{prom}`" in r]
        assert len(row) == 1, f"no single metrics-table row for {name} / {prom}"
        cells = [c.strip() for c in row[0].strip("|").split("|")]
        assert f"`{unit}`" in cells, (name, unit, cells)
        assert cells[0] == {"gauge": "observable gauge"}.get(kind, kind), (name, cells[0])


def test_every_bucket_set_is_listed_exactly(doc: str) -> None:
    for key, value in _constants(names).items():
        if key.endswith("_BUCKETS"):
            assert f"`{list(value)}`" in doc, f"{key} = {list(value)} not listed"
    # and each histogram's row names the set its buckets come from
    by_value = {tuple(v): k for k, v in _constants(names).items() if k.endswith("_BUCKETS")}
    titles = {
        "DURATION_BUCKETS": "durations",
        "TTFT_BUCKETS": "time to first token",
        "GAP_BUCKETS": "gaps",
        "TOKEN_RATE_BUCKETS": "token rate",
        "GENAI_DURATION_BUCKETS": "GenAI duration",
        "GENAI_TTFC_BUCKETS": "GenAI time to first chunk",
        "GENAI_TPOC_BUCKETS": "GenAI time per output chunk",
        "GENAI_AGENT_DURATION_BUCKETS": "GenAI agent duration",
    }
    assert set(titles) == set(by_value.values())
    for name, (_kind, _unit, _desc, buckets, _prom) in names.METRICS.items():
        if buckets is None:
            continue
        row = next(r for r in doc.splitlines() if r.startswith(f"| histogram | `{name}` |"))
        assert row.rstrip(" |").endswith(titles[by_value[tuple(buckets)]]), (name, row)
        bucket_row = next(r for r in doc.splitlines() if r.startswith(f"| {titles[by_value[tuple(buckets)]]} |"))
        assert f"`{name}`" in bucket_row, (name, bucket_row)


def test_environment_table(doc: str) -> None:
    table = doc[doc.index("## Environment") :]
    defaults = env.Settings()
    expected = {
        env.GRAPHAI_TELEMETRY: "on" if defaults.enabled else "off",
        env.GRAPHAI_TOKEN_EVENTS: defaults.token_events,
        env.GRAPHAI_TOKEN_EVENTS_MAX: str(defaults.token_events_max),
        env.GRAPHAI_CAPTURE_CONTENT: str(defaults.capture_content).lower(),
        env.OTEL_CAPTURE_CONTENT: "false",
        env.GRAPHAI_CAPTURE_MAX_CHARS: str(defaults.capture_max_chars),
        env.GRAPHAI_STALL_AFTER_S: f"{defaults.stall_after_s:g}",
        env.GRAPHAI_METRICS_LABEL_LIMIT: str(defaults.label_limit),
        env.GRAPHAI_PROMETHEUS_ADDR: env.DEFAULT_PROMETHEUS_ADDR,
        env.GRAPHAI_PROMETHEUS_PORTS: "1",
    }
    assert set(env.ALL) <= set(expected)
    for var, default in expected.items():
        row = next((r for r in table.splitlines() if r.startswith(f"| `{var}` |")), None)
        assert row is not None, f"{var} has no row in the environment table"
        assert row.rstrip().endswith(f"| `{default}` |"), (var, default, row)
    for policy in env.TOKEN_EVENT_POLICIES:
        assert f"| `{policy}`" in doc, policy
    assert f"up to index {env.SAMPLED_HEAD}, then every {env.SAMPLED_EVERY}th" in doc


def test_no_unknown_names(code_spans: list[str]) -> None:
    """Every ``graphai.x.y`` / ``graphai_x`` / ``gen_ai.x`` the page shows exists in the code."""
    known = {v for v in _constants(names).values() if isinstance(v, str)}
    values = {  # every string constant and tuple member: a setting's value shown as code
        v for m in (names, env) for c in _constants(m).values()
        for v in (c if isinstance(c, tuple) else (c,))
    }  # fmt: skip
    prom = {m[4] for m in names.METRICS.values()}
    labels = {k.replace(".", "_") for k in known if k.startswith(("graphai.", "error."))}
    unknown = []
    for span in code_spans:
        for word in re.findall(r"(?<![\w.])(?:graphai|gen_ai)\.[a-z_]+(?:\.[a-z_]+)*", span):
            if word in known or _importable(word):
                continue
            unknown.append(word)
        for word in re.findall(r"(?<![\w.])(?:graphai|gen_ai)_[a-z_]+", span):
            base = re.sub(r"_(bucket|count|sum)$", "", word)
            if base in prom or word in labels or word in values:
                continue
            unknown.append(word)
    assert not unknown, f"names in docs/telemetry.md that the code does not define: {sorted(set(unknown))}"


def _importable(dotted: str) -> bool:
    """``graphai.telemetry.configure`` and the like: a real module or attribute path."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_logging_contract_is_stated(doc: str) -> None:
    assert "emitted only when structlog is configured" in doc
    assert "never calls `structlog.configure()`" in doc
    for event in (names.LOG_RUN_START, names.LOG_RUN_END, names.LOG_NODE_START, names.LOG_NODE_END,
                  names.LOG_NODE_ERROR, names.LOG_EXPORT_FAILED):
        assert f"| `{event}` |" in doc, event


def test_screenshot_is_referenced(doc: str) -> None:
    assert "](img/phoenix-trace.png)" in doc
