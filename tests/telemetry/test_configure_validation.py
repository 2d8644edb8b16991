"""``configure()`` checks everything before it starts anything (hardening case 10): a bad
standard ``OTEL_*`` value, ``GRAPHAI_*`` value or argument raises ``TelemetryConfigError`` (a
``ValueError``) naming the variable or argument, with no port left bound, no provider made
global and no thread started; ``OTEL_SDK_DISABLED=true`` sets up nothing."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from opentelemetry import _logs, metrics, trace

from graphai import _hooks
from graphai.errors import TelemetryConfigError
from graphai.telemetry import env
from graphai.telemetry.setup import configure
from tests._tools import free_port
from tests.telemetry._support import BAD_GRAPHAI

pytestmark = pytest.mark.usefixtures("clean_env")


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
    """Each bad standard variable, sampler argument, ``GRAPHAI_*`` value or ``configure()``
    argument raises before anything starts; good values, an argument overriding a bad variable
    and ``OTEL_SDK_DISABLED`` are accepted."""

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


class TestValidation:
    """Invalid settings raise ValueError naming the variable or argument, before anything starts."""

    def test_invalid_prometheus_env_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(env.GRAPHAI_PROMETHEUS_ADDR, "localhost")
        before = _hooks.get_instrumentation()
        with pytest.raises(ValueError, match=env.GRAPHAI_PROMETHEUS_ADDR):
            configure(set_global=False)
        assert _hooks.get_instrumentation() is before

    def test_invalid_prometheus_argument_names_the_argument(self) -> None:
        with pytest.raises(ValueError, match="prometheus_addr"):
            configure(set_global=False, prometheus_addr="127.0.0.1:http")

    def test_unsupported_protocol_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
            configure(set_global=False, prometheus_addr=False)
        with pytest.raises(ValueError, match="otlp_protocol"):
            configure(set_global=False, prometheus_addr=False, otlp_protocol="thrift")


class TestSdkDisabled:
    """OTEL_SDK_DISABLED=true: configure() sets up nothing and the handle does nothing."""

    def test_disabled_handle_does_nothing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        monkeypatch.setenv(env.GRAPHAI_PROMETHEUS_ADDR, "127.0.0.1:0")
        before = _hooks.get_instrumentation()
        h = configure()
        assert _hooks.get_instrumentation() is before
        assert h.tracer_provider is None and h.meter_provider is None and h.logger_provider is None
        assert h.prometheus_addr is None
        event = {"event": "x", "level": "info"}
        assert h.log_processor(None, "info", event) is event
        assert h.force_flush() and h.shutdown() and h.shutdown()
