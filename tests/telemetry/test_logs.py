"""Logs: graphai's structlog lifecycle lines (never one per token, no content), the
correlation processors, graphai's own warnings on stdlib logging when structlog is not
configured, and the processor that turns structlog events into OpenTelemetry log records."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry import _logs
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from structlog.testing import capture_logs

from graphai import Callback, Graph, node
from graphai.telemetry.logging import add_graph_context, add_otel_context, configure_logging
from graphai.telemetry.setup import OTelLogsProcessor, TelemetryHandle
from tests._otel import Signals
from tests.telemetry._support import local


def streaming_graph() -> Graph:
    @node(start=True)
    async def prep() -> dict:
        structlog.get_logger("app").info("inside.prep")
        return {}

    @node(end=True, stream=True)
    async def talk(callback) -> dict:
        for t in ("x", "y", "z"):
            await callback.acall(t)
        return {"said": "secret words"}

    return Graph(name="lg").add_node(prep()).add_node(talk()).add_edge(prep, talk)


async def drive(g: Graph) -> None:
    cb = Callback()

    async def consume() -> list:
        return [t async for t in cb.aiter()]

    await asyncio.wait_for(asyncio.gather(g.execute({"q": "hidden"}, callback=cb), consume()), 5)


class TestLifecycleLogs:
    """graph.run.start/end and node.start/end with their fields; never one line per token."""

    async def test_events(self, signals: Signals) -> None:
        with capture_logs(processors=[add_graph_context]) as logs:
            await drive(streaming_graph())
        events = [e["event"] for e in logs]
        assert events == [
            "graph.run.start",
            "node.start",
            "inside.prep",
            "node.end",
            "node.start",
            "node.end",
            "graph.run.end",
        ]
        inside = logs[2]
        assert inside["graphai.graph.name"] == "lg" and inside["graphai.node.name"] == "prep"
        assert len(inside["graphai.run.id"]) == 32
        end = logs[5]
        assert end["graphai.node.name"] == "talk" and end["outcome"] == "ok" and end["tokens"] == 3
        assert end["log_level"] == "info" and set(end) >= {"duration_s", "ttft_s", "token_rate"}
        run_end = logs[-1]
        assert run_end["outcome"] == "ok" and run_end["tokens"] == 3 and run_end["log_level"] == "info"
        assert "hidden" not in repr(logs) and "secret" not in repr(logs)

    async def test_lifecycle_lines_carry_their_span_ids(self, signals: Signals) -> None:
        with capture_logs(processors=[add_otel_context]) as logs:
            await drive(streaming_graph())
        by_event = {(e["event"], e.get("graphai.node.name")): e for e in logs}
        talk = signals.span("talk")
        run = signals.span("invoke_workflow lg")
        assert by_event[("node.end", "talk")]["span_id"] == format(talk.context.span_id, "016x")
        assert by_event[("graph.run.end", None)]["span_id"] == format(run.context.span_id, "016x")
        assert by_event[("graph.run.end", None)]["trace_id"] == format(run.context.trace_id, "032x")

    async def test_node_error_logged_with_exc_info(self, signals: Signals) -> None:
        secret = "-".join(("secret", "input"))  # a runtime value, not in the source lines

        @node(start=True, end=True)
        async def bad() -> dict:
            raise ValueError(secret)

        with capture_logs() as logs:
            try:
                await Graph(name="e").add_node(bad()).execute({})
            except ValueError:
                pass
        err = [e for e in logs if e["event"] == "node.error"]
        assert len(err) == 1 and err[0]["log_level"] == "error"
        assert err[0]["error.type"] == "ValueError" and "exc_info" not in err[0]
        # content capture is off: the stack trace without the message
        assert err[0]["exception"].startswith("Traceback (most recent call last):\n")
        assert err[0]["exception"].endswith("\nValueError")
        assert "secret-input" not in err[0]["exception"]

    async def test_node_error_exc_info_with_content_capture(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        import graphai.telemetry as t
        from graphai.telemetry import env

        @node(start=True, end=True)
        async def bad() -> dict:
            raise ValueError("secret-input")

        tp = TracerProvider()
        t.instrument(tracer_provider=tp, settings=env.Settings(capture_content=True))
        try:
            with capture_logs() as logs:
                with pytest.raises(ValueError):
                    await Graph(name="e").add_node(bad()).execute({})
        finally:
            t.instrument()
            tp.shutdown()
        err = [e for e in logs if e["event"] == "node.error"]
        assert len(err) == 1 and isinstance(err[0]["exc_info"], ValueError)

    async def test_silent_when_structlog_is_not_configured(self, capsys, signals: Signals) -> None:
        structlog.reset_defaults()
        await drive(streaming_graph())
        out = capsys.readouterr()
        assert "graph.run" not in out.out + out.err


class TestProcessors:
    """add_otel_context adds the ids of the current span; configure_logging renders JSON."""

    async def test_otel_context_and_json(self, signals: Signals) -> None:
        buf = io.StringIO()
        configure_logging(json=True, file=buf)
        try:
            tracer = signals.tp.get_tracer("t")
            with tracer.start_as_current_span("outer") as span:
                structlog.get_logger("app").info("hello", k=1)
            line = json.loads(buf.getvalue().splitlines()[-1])
            ctx = span.get_span_context()
            assert line["event"] == "hello" and line["k"] == 1 and line["level"] == "info"
            assert line["trace_id"] == format(ctx.trace_id, "032x")
            assert line["span_id"] == format(ctx.span_id, "016x")
            assert line["trace_flags"] == format(int(ctx.trace_flags), "02x") and int(line["trace_flags"], 16) & 1
            assert line["timestamp"].endswith("Z")
        finally:
            structlog.reset_defaults()

    def test_no_span_no_ids(self) -> None:
        assert add_otel_context(None, "info", {"event": "e"}) == {"event": "e"}
        assert add_graph_context(None, "info", {"event": "e"}) == {"event": "e"}


class TestLibraryWarnings:
    """graphai's own warnings go to stdlib logging when structlog is not configured."""

    async def test_branch_failure_without_structlog(self, capsys, caplog) -> None:
        structlog.reset_defaults()

        @node(start=True, end=True)
        async def main() -> dict:
            return {}

        @node()
        async def side() -> dict:
            raise RuntimeError("side failed")

        g = Graph(name="w").add_node(main()).add_node(side()).add_branch(main, side)
        with caplog.at_level("ERROR", logger="graphai"):
            assert await g.execute({}) == {}
        out = capsys.readouterr()
        assert out.out == ""
        assert [r.getMessage() for r in caplog.records if r.name == "graphai"] == [
            "branch.failed source='main' destination='side' error_type='RuntimeError'"
        ]
        assert [type(e.error) for e in g.branch_errors] == [RuntimeError]


@pytest.mark.usefixtures("clean_env")
class TestOTelLogsProcessor:
    """structlog events become OTel log records; the event dict passes through unchanged."""

    @pytest.fixture
    def logs(self) -> Iterator[tuple[LoggerProvider, InMemoryLogRecordExporter]]:
        lp, exporter = LoggerProvider(), InMemoryLogRecordExporter()
        lp.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        yield lp, exporter
        lp.shutdown()

    def test_event_becomes_a_record_in_the_current_span(
        self, logs: tuple[LoggerProvider, InMemoryLogRecordExporter]
    ) -> None:
        lp, exporter = logs
        proc = OTelLogsProcessor(lp)
        log = structlog.wrap_logger(
            structlog.ReturnLogger(),
            processors=[
                structlog.processors.add_log_level,
                proc,
                structlog.processors.JSONRenderer(),
            ],
        )
        tp = TracerProvider()
        with tp.get_tracer("t").start_as_current_span("work") as span:
            rendered = log.warning(
                "graph.run.end", tokens=3, ratio=0.5, ok=True, name="g", obj=object(), huge=2**70
            )
        tp.shutdown()
        assert json.loads(rendered)["event"] == "graph.run.end"
        (record,) = [r.log_record for r in exporter.get_finished_logs()]
        assert record.body == "graph.run.end"
        assert record.severity_number == SeverityNumber.WARN
        assert record.severity_text == "WARNING"
        assert dict(record.attributes or {}) == {"tokens": 3, "ratio": 0.5, "ok": True, "name": "g"}
        ctx = span.get_span_context()
        assert (record.trace_id, record.span_id) == (ctx.trace_id, ctx.span_id)

    def test_event_dict_is_returned_unchanged(
        self, logs: tuple[LoggerProvider, InMemoryLogRecordExporter]
    ) -> None:
        proc = OTelLogsProcessor(logs[0])
        event = {"event": "e", "level": "info", "nested": {"a": 1}, "n": 1}
        snapshot = dict(event)
        assert proc(None, "info", event) is event
        assert event == snapshot

    def test_exc_info_becomes_exception_attributes(
        self, logs: tuple[LoggerProvider, InMemoryLogRecordExporter]
    ) -> None:
        lp, exporter = logs
        proc = OTelLogsProcessor(lp)
        try:
            raise KeyError("boom")
        except KeyError:
            proc(None, "exception", {"event": "node.error", "exc_info": True})
        (record,) = [r.log_record for r in exporter.get_finished_logs()]
        assert record.severity_number == SeverityNumber.ERROR
        attrs = dict(record.attributes or {})
        assert attrs["exception.type"] == "KeyError"
        assert "boom" in attrs["exception.message"]

    def test_a_failing_provider_never_raises(self) -> None:
        class Broken(_logs.LoggerProvider):
            def get_logger(self, *args: Any, **kwargs: Any) -> _logs.Logger:
                raise RuntimeError("broken")

        proc = OTelLogsProcessor(Broken())
        event = {"event": "e"}
        assert proc(None, "info", event) is event
        assert proc.dropped == 1

    def test_processor_stops_forwarding_after_shutdown(
        self, handles: list[TelemetryHandle]
    ) -> None:
        h = local(handles)
        exporter = InMemoryLogRecordExporter()
        assert isinstance(h.logger_provider, LoggerProvider)
        h.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        h.log_processor(None, "info", {"event": "before"})
        h.shutdown()
        h.log_processor(None, "info", {"event": "after"})
        assert [r.log_record.body for r in exporter.get_finished_logs()] == ["before"]
