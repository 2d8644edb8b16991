"""
The two GenAI conventions modes (docs/telemetry.md, "GenAI conventions: two modes"): by default
the names of semantic-conventions v1.41.0, under ``OTEL_SEMCONV_STABILITY_OPT_IN`` =
``gen_ai_latest_experimental`` those of semantic-conventions-genai v0.1.0, never both; every
``graphai.*`` name the same in both. Exact span names, attribute keys and values, metric names,
attributes and buckets per mode; how the variable is parsed (lenient and strict); that the docs
list both modes; that the dashboards and rules use no mode-dependent series.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

import graphai.telemetry as telemetry
from graphai import Callback, Graph, node
from graphai.errors import TelemetryConfigError
from graphai.telemetry import _semconv, _state, env
from graphai.telemetry import names as N
from graphai.telemetry.setup import configure
from graphai.telemetry.testing import TelemetryCapture, capture_telemetry

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "telemetry.md"
VAR = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST = "gen_ai_latest_experimental"

DEFAULT_GENAI_METRICS = {
    "gen_ai.client.operation.duration",
    "gen_ai.client.operation.time_to_first_chunk",
    "gen_ai.client.operation.time_per_output_chunk",
}
LATEST_GENAI_METRICS = {
    "gen_ai.client.inference.duration",
    "gen_ai.client.inference.time_to_first_chunk",
    "gen_ai.client.inference.time_per_output_chunk",
    "gen_ai.invoke_agent.duration",
    "gen_ai.execute_tool.duration",
}
DOUBLING = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
AGENT_BUCKETS = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6]
SPAN_NAMES = [
    "chat m-1",
    "execute_tool search",
    "invoke_agent plan",
    "invoke_workflow helpdesk",
    "tidy",
]
# attribute values that are timings (differ run to run, never by mode)
TIMINGS = {N.GEN_AI_RESPONSE_TTFC, N.NODE_TPOT, N.NODE_MAX_GAP, N.RUN_TTFT, N.RUN_ID}


@pytest.fixture(autouse=True)
def _no_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """No stability opt-in from the caller's shell."""
    monkeypatch.delenv(VAR, raising=False)


def helpdesk(fail_tool: bool = False) -> Graph:
    @node(start=True, kind="agent")
    async def plan(q: str) -> dict[str, Any]:
        return {"q": q}

    @node(kind="tool")
    async def search(q: str) -> dict[str, Any]:
        if fail_tool:
            raise ValueError("tool down")
        return {"hits": 2}

    @node(stream=True, kind="llm", model="m-1")
    async def answer(hits: int, callback: Callback) -> dict[str, Any]:
        for t in ("a", "b", "c"):
            await callback.acall(t)
        return {"text": "abc"}

    @node(end=True)
    async def tidy(text: str) -> dict[str, Any]:
        return {"n": len(text)}

    g = Graph(name="helpdesk").add_node(plan()).add_node(search()).add_node(answer())
    g.add_node(tidy()).add_edge(plan, search).add_edge(search, answer).add_edge(answer, tidy)
    return g


async def run(graph: Graph) -> None:
    cb = Callback()

    async def consume() -> None:
        async for _ in cb.aiter():
            pass

    results = await asyncio.wait_for(
        asyncio.gather(graph.execute({"q": "hi"}, callback=cb), consume(), return_exceptions=True),
        10,
    )
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, ValueError):
            raise r


def captured(mode: str, fail_tool: bool = False) -> TelemetryCapture:
    with capture_telemetry(settings=env.Settings(genai_semconv=mode), logs=False) as t:
        asyncio.run(run(helpdesk(fail_tool)))
    return t


@pytest.fixture(scope="module")
def default() -> TelemetryCapture:
    return captured(_semconv.DEFAULT)


@pytest.fixture(scope="module")
def latest() -> TelemetryCapture:
    return captured(LATEST)


def attrs(t: TelemetryCapture, span: str) -> dict[str, Any]:
    return dict(t.span(span).attributes or {})


def points(t: TelemetryCapture, metric: str) -> list[dict[str, Any]]:
    return sorted((dict(p.attributes or {}) for p in t.metric(metric)), key=repr)


def genai_metrics(t: TelemetryCapture) -> set[str]:
    return {m for m in t.metric_names() if m.startswith("gen_ai.")}


class TestDefaultMode:
    """Without the opt-in: v1.41.0's GenAI names, exactly as before."""

    def test_span_names(self, default: TelemetryCapture) -> None:
        assert sorted(s.name for s in default.spans()) == SPAN_NAMES

    def test_run_span_carries_the_workflow_name(self, default: TelemetryCapture) -> None:
        a = attrs(default, "invoke_workflow helpdesk")
        assert a[N.GEN_AI_OPERATION_NAME] == "invoke_workflow"
        assert a["gen_ai.workflow.name"] == "helpdesk"
        assert "gen_ai.agent.name" not in a
        assert {k for k in a if k.startswith("gen_ai.")} == {
            "gen_ai.operation.name",
            "gen_ai.workflow.name",
        }

    def test_node_span_genai_attributes(self, default: TelemetryCapture) -> None:
        assert genai_of(attrs(default, "invoke_agent plan")) == {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "plan",
        }  # fmt: skip
        assert genai_of(attrs(default, "execute_tool search")) == {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
            "gen_ai.tool.type": "function",
        }  # fmt: skip
        llm = attrs(default, "chat m-1")
        assert llm.pop("gen_ai.response.time_to_first_chunk") >= 0
        assert genai_of(llm) == {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "m-1",
            "gen_ai.request.stream": True,
        }  # fmt: skip
        assert genai_of(attrs(default, "tidy")) == {}

    def test_metric_names_and_attributes(self, default: TelemetryCapture) -> None:
        assert genai_metrics(default) == DEFAULT_GENAI_METRICS
        for name in DEFAULT_GENAI_METRICS:
            assert points(default, name) == [
                {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-1"}
            ]
        (p,) = default.metric("gen_ai.client.operation.duration")
        assert list(p.explicit_bounds) == DOUBLING
        (p,) = default.metric("gen_ai.client.operation.time_to_first_chunk")
        assert list(p.explicit_bounds) == list(N.GENAI_TTFC_BUCKETS)  # unchanged by default


class TestLatestMode:
    """``gen_ai_latest_experimental``: semantic-conventions-genai v0.1.0's names, and none of
    the old GenAI ones."""

    def test_span_names_do_not_change(self, latest: TelemetryCapture) -> None:
        assert sorted(s.name for s in latest.spans()) == SPAN_NAMES

    def test_run_span_is_an_invoke_workflow_with_the_agent_name(
        self, latest: TelemetryCapture
    ) -> None:
        a = attrs(latest, "invoke_workflow helpdesk")
        assert a[N.GEN_AI_OPERATION_NAME] == "invoke_workflow"
        assert a["gen_ai.agent.name"] == "helpdesk"
        assert "gen_ai.workflow.name" not in a
        assert {k for k in a if k.startswith("gen_ai.")} == {
            "gen_ai.operation.name",
            "gen_ai.agent.name",
        }

    def test_only_the_run_span_differs_from_the_default_mode(
        self, default: TelemetryCapture, latest: TelemetryCapture
    ) -> None:
        for name in SPAN_NAMES:
            d = {k: v for k, v in attrs(default, name).items() if k not in TIMINGS}
            lt = {k: v for k, v in attrs(latest, name).items() if k not in TIMINGS}
            if name == "invoke_workflow helpdesk":
                d["gen_ai.agent.name"] = d.pop("gen_ai.workflow.name")
            assert lt == d, name
            assert latest.span(name).kind == default.span(name).kind, name

    def test_metric_names(self, default: TelemetryCapture, latest: TelemetryCapture) -> None:
        assert genai_metrics(latest) == LATEST_GENAI_METRICS  # no old name left
        graphai = {m for m in latest.metric_names() if not m.startswith("gen_ai.")}
        assert graphai == {m for m in default.metric_names() if not m.startswith("gen_ai.")}
        assert all(m.startswith("graphai.") for m in graphai)

    def test_inference_metrics(self, latest: TelemetryCapture) -> None:
        for name in ("gen_ai.client.inference.duration", "gen_ai.client.inference.time_to_first_chunk",
                     "gen_ai.client.inference.time_per_output_chunk"):  # fmt: skip
            (p,) = latest.metric(name)
            assert dict(p.attributes or {}) == {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "m-1",
            }
            assert list(p.explicit_bounds) == DOUBLING, name
            assert p.count == 1

    def test_runs_and_agents_share_the_invoke_agent_duration(
        self, latest: TelemetryCapture
    ) -> None:
        assert points(latest, "gen_ai.invoke_agent.duration") == [
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "plan"},
            {"gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.name": "helpdesk"},
        ]
        for p in latest.metric("gen_ai.invoke_agent.duration"):
            assert list(p.explicit_bounds) == AGENT_BUCKETS and p.count == 1
        run = latest.metric(
            "gen_ai.invoke_agent.duration", **{"gen_ai.operation.name": "invoke_workflow"}
        )
        graph = latest.metric("graphai.graph.duration")
        assert run[0].sum == pytest.approx(graph[0].sum)  # the same duration, the run span's

    def test_tools_record_the_execute_tool_duration(self, latest: TelemetryCapture) -> None:
        (p,) = latest.metric("gen_ai.execute_tool.duration")
        assert dict(p.attributes or {}) == {
            "gen_ai.tool.name": "search",
            "gen_ai.tool.type": "function",
        }
        assert list(p.explicit_bounds) == DOUBLING and p.count == 1

    def test_errors_carry_error_type(self) -> None:
        t = captured(LATEST, fail_tool=True)
        assert points(t, "gen_ai.execute_tool.duration") == [
            {
                "gen_ai.tool.name": "search",
                "gen_ai.tool.type": "function",
                "error.type": "ValueError",
            }
        ]
        assert points(t, "gen_ai.invoke_agent.duration") == [
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "plan"},
            {"gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.name": "helpdesk",
             "error.type": "ValueError"},
        ]  # fmt: skip
        assert "gen_ai.client.inference.duration" not in t.metric_names()  # the llm never ran

    def test_genai_labels_pass_the_cardinality_guard(self) -> None:
        with capture_telemetry(
            settings=env.Settings(genai_semconv=LATEST, label_limit=1), logs=False
        ) as t:
            asyncio.run(run(helpdesk()))
        # node names past the limit are _OTHER in gen_ai.* attributes too, never raw
        tools = points(t, "gen_ai.execute_tool.duration")
        assert tools == [{"gen_ai.tool.name": N.OTHER, "gen_ai.tool.type": "function"}]


def genai_of(a: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in a.items() if k.startswith("gen_ai.")}


class TestParsing:
    """``OTEL_SEMCONV_STABILITY_OPT_IN`` as OpenTelemetry's instrumentations read it: comma-separated,
    stripped, exact; other instrumentations' values ignored; other ``gen_ai`` values invalid."""

    @pytest.mark.parametrize(
        ("raw", "mode", "bad"),
        [
            (None, "default", ()),
            ("", "default", ()),
            ("gen_ai_latest_experimental", LATEST, ()),
            (" http , gen_ai_latest_experimental ,database/dup", LATEST, ()),
            ("http,database/dup,,", "default", ()),
            ("GEN_AI_LATEST_EXPERIMENTAL", "default", ("GEN_AI_LATEST_EXPERIMENTAL",)),
            ("gen_ai_latest_experimental/dup", "default", ("gen_ai_latest_experimental/dup",)),
            ("gen_ai", "default", ("gen_ai",)),
            ("gen_ai_latest_experimental,gen_ai_latest", LATEST, ("gen_ai_latest",)),
        ],
    )
    def test_parse(self, raw: str | None, mode: str, bad: tuple[str, ...]) -> None:
        assert _semconv.parse_opt_in(raw) == (mode, bad)

    def test_lenient_warns_once_and_keeps_the_valid_values(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        raw = f"http,gen_ai_latest_experimental,gen_ai_{os.getpid()}_x{id(self)}"
        monkeypatch.setenv(VAR, raw)
        with structlog.testing.capture_logs() as logs:
            assert env.from_env().genai_semconv == LATEST
            assert env.from_env().genai_semconv == LATEST
        events = [e for e in logs if e["event"] == N.LOG_CONFIG_INVALID]
        assert len(events) == 1, logs
        assert (events[0]["variable"], events[0]["value"], events[0]["default"]) == (
            VAR,
            raw,
            LATEST,
        )

    def test_lenient_alone_invalid_gives_the_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        raw = f"GEN_AI_LATEST_EXPERIMENTAL,x{id(self)}"
        monkeypatch.setenv(VAR, raw)
        with structlog.testing.capture_logs() as logs:
            assert env.from_env().genai_semconv == "default"
        assert [
            (e["variable"], e["default"]) for e in logs if e["event"] == N.LOG_CONFIG_INVALID
        ] == [(VAR, "default")]

    def test_other_instrumentations_values_are_not_invalid(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(VAR, "http/dup,database")
        with structlog.testing.capture_logs() as logs:
            assert env.from_env(strict=True) == env.Settings()
        assert logs == []

    def test_strict_raises_naming_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(VAR, "http,gen_ai_latest_experimental/dup")
        with pytest.raises(TelemetryConfigError) as ei:
            env.from_env(strict=True)
        assert str(ei.value) == (
            "OTEL_SEMCONV_STABILITY_OPT_IN='http,gen_ai_latest_experimental/dup': expected "
            "'gen_ai_latest_experimental' as the only gen_ai value (exact spelling, "
            "comma-separated from other instrumentations' values), got 'gen_ai_latest_experimental/dup'"
        )

    def test_configure_raises_before_starting_anything(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(VAR, "gen_ai_latest_experimentl")
        before = _state.INSTALLED[0]
        with pytest.raises(TelemetryConfigError, match=r"^OTEL_SEMCONV_STABILITY_OPT_IN="):
            configure(prometheus_addr=False, otlp_endpoint=None, set_global=False)
        assert _state.INSTALLED[0] is before

    def test_an_unknown_mode_in_settings_is_an_error(self) -> None:
        with pytest.raises(TelemetryConfigError, match="genai_semconv='latest'"):
            telemetry.instrument(settings=env.Settings(genai_semconv="latest"))


@pytest.fixture
def restore_instrumentation() -> Iterator[None]:
    from graphai.telemetry.testing import restore_instrumentation, save_instrumentation

    state = save_instrumentation()
    yield
    restore_instrumentation(state)


class TestWhenTheModeIsRead:
    """With the other settings, at instrument() / the first run, never at import; fixed per
    instrumentation (a changed variable counts at the next instrument())."""

    def test_instrument_reads_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, restore_instrumentation: None
    ) -> None:
        monkeypatch.setenv(VAR, "gen_ai_latest_experimental")
        first = telemetry.instrument()
        assert first is not None and first.conv.mode == LATEST
        assert first.conv.run_name_key == "gen_ai.agent.name"
        monkeypatch.delenv(VAR)
        second = (
            telemetry.instrument()
        )  # settings differ: a replacement, not "already instrumented"
        assert second is not None and second is not first and second.conv.mode == "default"

    def test_first_run_reads_it_import_does_not(self) -> None:
        code = (
            "import os, asyncio, graphai\n"
            "from graphai.telemetry import _state\n"
            "assert _state.INSTALLED[0] is None\n"  # nothing at import
            "@graphai.node(start=True, end=True)\n"
            "async def f() -> dict:\n"
            "    return {}\n"
            "asyncio.run(graphai.Graph().add_node(f).compile().execute({}))\n"
            "print(_state.INSTALLED[0].conv.mode)\n"
        )
        child = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
        for value, mode, warnings in [
            ("gen_ai_latest_experimental", LATEST, 0),
            ("GEN_AI_LATEST_EXPERIMENTAL", "default", 1),
            ("http", "default", 0),
        ]:
            proc = subprocess.run(
                [sys.executable, "-W", "error", "-c", code],
                env={**child, VAR: value, "PYTHONPATH": str(ROOT)},
                capture_output=True, text=True, timeout=60, cwd=ROOT,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == f"{mode}\n", (value, proc.stdout, proc.stderr)
            assert proc.stderr.count("telemetry.config_invalid") == warnings, proc.stderr


class TestDocsListBothModes:
    """docs/telemetry.md's mode table has each mode's names in its own column."""

    @staticmethod
    def table() -> dict[str, tuple[str, str]]:
        text = DOC.read_text(encoding="utf-8")
        section = text[text.index("## GenAI conventions: two modes") :]
        section = section[: section.index("\n## ", 3)]
        rows = {}
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3 and not set(cells[0]) <= {"-"} and cells[0] != "what":
                rows[cells[0]] = (cells[1], cells[2])
        return rows

    def test_every_metric_of_each_mode_is_in_its_column(self) -> None:
        table = self.table()
        default_col = " ".join(d for d, _ in table.values())
        latest_col = " ".join(lt for _, lt in table.values())
        for name in _semconv.conventions("default").metrics:
            assert f"`{name}`" in default_col and f"`{name}`" not in latest_col, name
        for name in _semconv.conventions(LATEST).metrics:
            assert f"`{name}`" in latest_col, name
        assert genai_set(default_col) == set(_semconv.conventions("default").metrics) | {
            "gen_ai.operation.name", "gen_ai.workflow.name",
        }  # fmt: skip
        assert set(_semconv.conventions(LATEST).metrics) <= genai_set(latest_col)

    def test_run_span_row(self) -> None:
        d, lt = self.table()["run span"]
        assert "`invoke_workflow {graph name}`" in d and "`invoke_workflow {graph name}`" in lt
        assert "`gen_ai.workflow.name` = graph name" in d
        assert "`gen_ai.agent.name` = graph name" in lt

    def test_environment_row(self) -> None:
        text = DOC.read_text(encoding="utf-8")
        (row,) = [r for r in text.splitlines() if r.startswith(f"| `{VAR}` |")]
        assert "`gen_ai_latest_experimental`" in row and row.endswith("| unset (`default`) |")
        assert env.Settings().genai_semconv == "default"
        assert env.GEN_AI_SEMCONV_MODES == ("default", LATEST)


def genai_set(text: str) -> set[str]:
    return set(re.findall(r"`(gen_ai\.[a-z_.]+)`", text))


class TestDashboardsAreModeIndependent:
    """The dashboards and alert rules query graphai's own series only, which both modes emit:
    no panel or rule depends on a GenAI name (tests/ops/test_live_prometheus.py runs every query
    against a real Prometheus in both modes)."""

    def test_no_query_or_rule_uses_a_genai_series(self) -> None:
        from tests.ops._ops import ALERTS, FAST_ALERTS, queries, rules, series_names

        used = {n for _, _, t in queries() for n in series_names(t["expr"])}
        for path in (ALERTS, FAST_ALERTS):
            used |= {n for r in rules(path) for n in series_names(r["expr"]) if ":" not in n}
        assert used and all(n.startswith("graphai_") for n in used), sorted(used)
        genai_prom = {N.METRICS[m][4] for m in _semconv.GENAI_HISTOGRAMS}
        assert not {n for n in used if re.sub(r"_(bucket|count|sum)$", "", n) in genai_prom}


def test_scope_schema_url_is_the_default_names_version(default: TelemetryCapture) -> None:
    # the default names are semantic-conventions v1.41.0's (names.py): the scope says so
    scopes = {(s.instrumentation_scope.name, s.instrumentation_scope.schema_url) for s in default.spans()}
    assert scopes == {(N.SCOPE, "https://opentelemetry.io/schemas/1.41.0")}
