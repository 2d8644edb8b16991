"""
Hardening, cases 9 and 10: telemetry configuration from the environment.

Case 9: ``import graphai`` never raises because of a ``GRAPHAI_*`` value. A bad value is replaced
by its default and logged once per process as ``telemetry.config_invalid`` (a log line, not a
Python warning: ``-W error`` must not turn it into an import failure); the other variables are
still read. ``env.from_env(strict=True)`` and ``configure()`` raise ``TelemetryConfigError``.

Case 10: bad standard ``OTEL_*`` values and bad ``configure()`` arguments raise
``TelemetryConfigError`` (a ``ValueError``) naming the variable or argument, before anything
starts: no port left bound, no provider made global, no thread started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry import _logs, metrics, trace

import graphai
from graphai import _hooks
from graphai.errors import TelemetryConfigError
from graphai.telemetry import env
from graphai.telemetry import names as N
from graphai.telemetry.setup import configure
from tests._tools import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BAD_GRAPHAI = [
    ("GRAPHAI_TOKEN_EVENTS", "bogus", "'capped'"),
    ("GRAPHAI_STALL_AFTER_S", "abc", "10.0"),
    ("GRAPHAI_TELEMETRY", "maybe", "'on'"),
    ("GRAPHAI_PROMETHEUS_ADDR", "nope", "'127.0.0.1:9464'"),
    ("GRAPHAI_CAPTURE_CONTENT", "perhaps", "False"),
    ("GRAPHAI_TOKEN_EVENTS_MAX", "many", "100"),
    ("GRAPHAI_CAPTURE_MAX_CHARS", "0", "4096"),
    ("GRAPHAI_METRICS_LABEL_LIMIT", "-3", "256"),
    ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "sometimes", "False"),
]

BAD_OTEL = [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "bogus"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "bogus"),
    ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
    ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "thrift"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "abc"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "-5"),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "soon"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "abc"),
    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "nan"),
    ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", ""),
    ("OTEL_BSP_SCHEDULE_DELAY", "abc"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "1.5"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),  # more than the default queue (2048)
    ("OTEL_BSP_EXPORT_TIMEOUT", "x"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "-1"),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "big"),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "x"),
    ("OTEL_BLRP_EXPORT_TIMEOUT", "x"),
    ("OTEL_TRACES_SAMPLER", "bogus"),
    ("OTEL_TRACES_SAMPLER", ""),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* / GRAPHAI_* from the caller's shell; graphai's instrumentation restored after."""
    for k in list(os.environ):
        if k.startswith(("OTEL_", "GRAPHAI_")):
            monkeypatch.delenv(k)
    before = _hooks.get_instrumentation()
    yield
    _hooks.set_instrumentation(before)


def run_py(code: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter under ``-W error``, clean OTEL_*/GRAPHAI_* env + ``environ``."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    child_env.update(environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def unique(value: str) -> str:
    """A value not seen before in this process (the warning is once per variable and value)."""
    return f"{value}-{uuid.uuid4().hex[:8]}"


def invalid_events(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == N.LOG_CONFIG_INVALID]


# -- case 9: lenient at import ---------------------------------------------------------------------
class TestImportIsLenient:
    @pytest.mark.parametrize(("var", "value", "default"), BAD_GRAPHAI)
    def test_import_with_bad_value_warns_once_and_succeeds(
        self, var: str, value: str, default: str
    ) -> None:
        code = (
            "import asyncio, graphai\n"
            "print('imported')\n"  # the import itself does no telemetry work: nothing logged
            "@graphai.node(start=True, end=True)\n"
            "async def f() -> dict:\n"
            "    return {}\n"
            "asyncio.run(graphai.Graph().add_node(f).compile().execute({}))\n"
            "print('ok')\n"
        )
        proc = run_py(code, **{var: value})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "imported\nok\n"
        output = proc.stdout + proc.stderr
        assert output.count("telemetry.config_invalid") == 1, output
        line = f"telemetry.config_invalid variable={var!r} value={value!r} default={default}"
        assert line in proc.stderr.splitlines(), proc.stderr

    def test_same_pair_twice_in_one_process_warns_once(self) -> None:
        code = (
            "import graphai\n"
            "from graphai.telemetry import env, instrument\n"
            "env.from_env(); env.from_env(); instrument()\n"
            "print('ok')\n"
        )
        proc = run_py(code, GRAPHAI_TOKEN_EVENTS="bogus")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "ok\n"
        assert proc.stderr.count("telemetry.config_invalid") == 1, proc.stderr

    def test_another_value_of_the_same_variable_warns_again(self) -> None:
        code = (
            "import os, graphai\n"
            "from graphai.telemetry import env\n"
            "env.from_env()\n"
            "os.environ['GRAPHAI_TOKEN_EVENTS'] = 'other'\n"
            "env.from_env()\n"
            "print('ok')\n"
        )
        proc = run_py(code, GRAPHAI_TOKEN_EVENTS="bogus")
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.count("telemetry.config_invalid") == 2, proc.stderr
        assert "value='other'" in proc.stderr

    def test_telemetry_off_still_honoured_next_to_a_bad_value(self) -> None:
        code = "import graphai, graphai.telemetry as t; print(t.is_instrumented())"
        proc = run_py(code, GRAPHAI_TELEMETRY="off", GRAPHAI_STALL_AFTER_S="abc")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "False\n"
        assert proc.stderr.count("telemetry.config_invalid") == 1, proc.stderr


class TestLenientSettings:
    def test_bad_variable_gets_default_good_ones_are_kept(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        bad = unique("bogus")
        monkeypatch.setenv("GRAPHAI_TOKEN_EVENTS", bad)
        monkeypatch.setenv("GRAPHAI_TOKEN_EVENTS_MAX", "7")
        monkeypatch.setenv("GRAPHAI_STALL_AFTER_S", "2.5")
        with structlog.testing.capture_logs() as logs:
            s = env.from_env()
            again = env.from_env()
        assert (s.token_events, s.token_events_max, s.stall_after_s) == ("capped", 7, 2.5)
        assert again == s
        events = invalid_events(logs)
        assert len(events) == 1, logs
        assert events[0]["log_level"] == "warning"
        assert (events[0]["variable"], events[0]["value"], events[0]["default"]) == (
            "GRAPHAI_TOKEN_EVENTS", bad, "capped",
        )  # fmt: skip

    def test_every_bad_variable_warns_and_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        values = {var: unique(value) for var, value, _default in BAD_GRAPHAI}
        for var, value in values.items():
            monkeypatch.setenv(var, value)
        with structlog.testing.capture_logs() as logs:
            s = env.from_env()
        assert s == env.Settings()
        assert {(e["variable"], e["value"]) for e in invalid_events(logs)} == set(values.items())

    def test_instrument_uses_lenient_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GRAPHAI_STALL_AFTER_S", unique("abc"))
        monkeypatch.setenv("GRAPHAI_METRICS_LABEL_LIMIT", "9")
        with structlog.testing.capture_logs() as logs:
            instr = graphai.telemetry.instrument()
        assert instr is not None
        assert (instr.settings.stall_after_s, instr.settings.label_limit) == (10.0, 9)
        assert len(invalid_events(logs)) == 1


# -- case 9/10: strict reads -----------------------------------------------------------------------
class TestStrictFromEnv:
    @pytest.mark.parametrize(("var", "value", "_default"), BAD_GRAPHAI)
    def test_strict_raises_naming_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, var: str, value: str, _default: str
    ) -> None:
        monkeypatch.setenv(var, value)
        with structlog.testing.capture_logs() as logs, pytest.raises(TelemetryConfigError) as ei:
            env.from_env(strict=True)
        assert str(ei.value).startswith(f"{var}={value!r}: expected ")
        assert isinstance(ei.value, ValueError)
        assert invalid_events(logs) == []

    def test_error_message_form(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GRAPHAI_TOKEN_EVENTS", "bogus")
        with pytest.raises(TelemetryConfigError) as ei:
            env.from_env(strict=True)
        assert str(ei.value) == (
            "GRAPHAI_TOKEN_EVENTS='bogus': expected one of capped, sampled, all, off"
        )

    def test_error_is_exported(self) -> None:
        assert graphai.TelemetryConfigError is TelemetryConfigError
        assert issubclass(TelemetryConfigError, ValueError)


# -- case 10: configure() validates everything before starting anything ---------------------------
def _otel_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("graphai-", "Otel"))}


def _assert_nothing_started(port: int, threads_before: set[threading.Thread], tp: Any) -> None:
    with socket.socket() as s:  # the /metrics port was never bound (or is free again)
        s.bind(("127.0.0.1", port))
    new = _otel_threads() - threads_before
    assert not [t for t in new if t.is_alive()], new
    assert not [
        t for t in threading.enumerate() if t.name == "graphai-metrics" and t not in threads_before
    ]
    assert trace.get_tracer_provider() is tp
    assert type(tp).__name__ == "ProxyTracerProvider"
    assert type(metrics.get_meter_provider()).__name__ in (
        "_ProxyMeterProvider",
        "ProxyMeterProvider",
    )
    assert type(_logs.get_logger_provider()).__name__ == "ProxyLoggerProvider"


def _configure_fails(**kw: Any) -> TelemetryConfigError:
    before = _hooks.get_instrumentation()
    try:
        handle = configure(**kw)
    except TelemetryConfigError as exc:
        assert _hooks.get_instrumentation() is before
        return exc
    handle.shutdown(timeout_s=2)
    pytest.fail(f"configure({kw}) did not raise TelemetryConfigError")


class TestConfigureStrict:
    @pytest.mark.parametrize(("var", "value"), BAD_OTEL)
    def test_bad_otel_variable_raises_before_anything_starts(
        self, monkeypatch: pytest.MonkeyPatch, var: str, value: str
    ) -> None:
        monkeypatch.setenv(var, value)
        port, threads, tp = free_port(), _otel_threads(), trace.get_tracer_provider()
        exc = _configure_fails(prometheus_addr=f"127.0.0.1:{port}")
        assert str(exc).startswith(f"{var}={value!r}: expected "), str(exc)
        _assert_nothing_started(port, threads, tp)

    @pytest.mark.parametrize("arg", ["abc", "2", "-0.1", "nan"])
    def test_bad_ratio_sampler_argument(self, monkeypatch: pytest.MonkeyPatch, arg: str) -> None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
        port, threads, tp = free_port(), _otel_threads(), trace.get_tracer_provider()
        exc = _configure_fails(prometheus_addr=f"127.0.0.1:{port}")
        assert str(exc).startswith(
            f"OTEL_TRACES_SAMPLER_ARG={arg!r}: expected a number from 0 to 1"
        )
        _assert_nothing_started(port, threads, tp)

    @pytest.mark.parametrize(("var", "value", "_default"), BAD_GRAPHAI)
    def test_bad_graphai_variable_raises_in_configure(
        self, monkeypatch: pytest.MonkeyPatch, var: str, value: str, _default: str
    ) -> None:
        monkeypatch.setenv(var, value)
        port, threads, tp = free_port(), _otel_threads(), trace.get_tracer_provider()
        exc = _configure_fails(prometheus_addr=f"127.0.0.1:{port}")
        assert str(exc).startswith(f"{var}={value!r}: ")
        _assert_nothing_started(port, threads, tp)

    @pytest.mark.parametrize(
        ("kw", "name"),
        [
            ({"otlp_protocol": "bogus"}, "otlp_protocol='bogus'"),
            ({"otlp_protocol": 4317}, "otlp_protocol=4317"),
            ({"prometheus_addr": "nope"}, "prometheus_addr='nope'"),
            ({"prometheus_addr": 9464}, "prometheus_addr=9464"),
            ({"metric_export_interval_ms": "x"}, "metric_export_interval_ms='x'"),
            ({"metric_export_interval_ms": -1}, "metric_export_interval_ms=-1"),
            ({"metric_export_interval_ms": 0}, "metric_export_interval_ms=0"),
            ({"metric_export_interval_ms": True}, "metric_export_interval_ms=True"),
            ({"service_name": ""}, "service_name=''"),
        ],
    )
    def test_bad_argument_names_the_argument(self, kw: dict[str, Any], name: str) -> None:
        port, threads, tp = free_port(), _otel_threads(), trace.get_tracer_provider()
        kw.setdefault("prometheus_addr", f"127.0.0.1:{port}")
        exc = _configure_fails(**kw)
        assert str(exc).startswith(f"{name}: expected "), str(exc)
        _assert_nothing_started(port, threads, tp)

    def test_message_form(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "bogus")
        exc = _configure_fails(set_global=False, prometheus_addr=False)
        assert str(exc).startswith(
            "OTEL_EXPORTER_OTLP_PROTOCOL='bogus': expected one of grpc, http/protobuf"
        )
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL")
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "x")
        exc = _configure_fails(set_global=False, prometheus_addr=False)
        assert str(exc) == "OTEL_BSP_MAX_QUEUE_SIZE='x': expected an integer > 0"

    def test_good_values_are_accepted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for var, value in {
            "OTEL_EXPORTER_OTLP_PROTOCOL": " HTTP/protobuf ",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
            "OTEL_METRIC_EXPORT_INTERVAL": "1500.5",
            "OTEL_METRIC_EXPORT_TIMEOUT": "1000",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BSP_MAX_QUEUE_SIZE": "100",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100",
            "OTEL_BLRP_MAX_QUEUE_SIZE": " 64 ",
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "8",
            "OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }.items():
            monkeypatch.setenv(var, value)
        handle = configure(set_global=False, prometheus_addr=False)
        try:
            assert handle.tracer_provider is not None
        finally:
            assert handle.shutdown(timeout_s=2)

    def test_protocol_argument_overrides_a_bad_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        handle = configure(set_global=False, prometheus_addr=False, otlp_protocol="grpc")
        assert handle.shutdown(timeout_s=2)

    def test_sampler_argument_ignored_for_other_samplers(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "not-a-number")
        handle = configure(set_global=False, prometheus_addr=False)
        assert handle.shutdown(timeout_s=2)

    def test_sdk_disabled_short_circuits_first(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "bogus")
        monkeypatch.setenv("GRAPHAI_TOKEN_EVENTS", "bogus")
        handle = configure(prometheus_addr="nope")
        assert handle.tracer_provider is None and handle.prometheus_addr is None
        assert handle.shutdown(timeout_s=2)
