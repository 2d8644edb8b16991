"""``GRAPHAI_*`` settings from the environment (hardening case 9): every variable parses; at
import and in ``instrument()`` a bad value is replaced by its default and logged once per
variable and value as ``telemetry.config_invalid`` (a log line, not a Python warning: ``-W
error`` must not turn it into an import failure), the other variables still read; strict reads
raise ``TelemetryConfigError`` naming the variable."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import structlog

import graphai
from graphai.errors import TelemetryConfigError
from graphai.telemetry import env
from graphai.telemetry import names as N
from tests.telemetry._support import BAD_GRAPHAI, run_py


class TestEnv:
    """Every GRAPHAI_* variable parses, with errors naming the variable."""

    def test_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in env.ALL:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(env.OTEL_CAPTURE_CONTENT, raising=False)
        assert env.from_env() == env.Settings()
        assert env.Settings().prometheus_addr == "127.0.0.1:9464"

    def test_values(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GRAPHAI_TOKEN_EVENTS", "sampled")
        monkeypatch.setenv("GRAPHAI_TOKEN_EVENTS_MAX", "10")
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        monkeypatch.setenv("GRAPHAI_STALL_AFTER_S", "2.5")
        monkeypatch.setenv("GRAPHAI_METRICS_LABEL_LIMIT", "7")
        monkeypatch.setenv("GRAPHAI_PROMETHEUS_ADDR", "0.0.0.0:9999")
        s = env.from_env()
        assert (s.token_events, s.token_events_max, s.capture_content) == ("sampled", 10, True)
        assert (s.stall_after_s, s.label_limit, s.prometheus_addr) == (2.5, 7, "0.0.0.0:9999")

    @pytest.mark.parametrize(
        ("var", "value", "msg"),
        [
            ("GRAPHAI_TELEMETRY", "maybe", "GRAPHAI_TELEMETRY='maybe': expected on or off"),
            ("GRAPHAI_TOKEN_EVENTS", "some", "GRAPHAI_TOKEN_EVENTS='some': expected one of capped, sampled, all, off"),
            ("GRAPHAI_TOKEN_EVENTS_MAX", "x", "GRAPHAI_TOKEN_EVENTS_MAX='x': expected an integer >= 0"),
            ("GRAPHAI_STALL_AFTER_S", "-1", "GRAPHAI_STALL_AFTER_S='-1': expected a value >= 0.0"),
            ("GRAPHAI_CAPTURE_CONTENT", "yep", "GRAPHAI_CAPTURE_CONTENT='yep': expected one of true/false/on/off/1/0"),
            ("GRAPHAI_PROMETHEUS_ADDR", "9464", "GRAPHAI_PROMETHEUS_ADDR='9464': expected host:port, e.g. 127.0.0.1:9464"),
        ],
    )
    def test_errors(self, monkeypatch: pytest.MonkeyPatch, var: str, value: str, msg: str) -> None:
        monkeypatch.setenv(var, value)
        with pytest.raises(ValueError) as ei:
            env.from_env(strict=True)
        assert str(ei.value) == msg


def unique(value: str) -> str:
    """A value not seen before in this process (the warning is once per variable and value)."""
    return f"{value}-{uuid.uuid4().hex[:8]}"


def invalid_events(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == N.LOG_CONFIG_INVALID]


@pytest.mark.usefixtures("clean_env")
class TestImportIsLenient:
    """``import graphai`` and a first run never fail on a bad ``GRAPHAI_*`` value (a fresh
    interpreter under ``-W error``): one ``telemetry.config_invalid`` line per variable and
    value, the other variables still honoured."""

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


@pytest.mark.usefixtures("clean_env")
class TestLenientSettings:
    """``env.from_env()`` replaces each bad variable by its default, keeps the good ones and
    logs each bad pair once; ``instrument()`` reads the settings so."""

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


@pytest.mark.usefixtures("clean_env")
class TestStrictFromEnv:
    """``env.from_env(strict=True)`` raises ``TelemetryConfigError`` (a ``ValueError``,
    exported from ``graphai``) naming the variable and its value, and logs nothing."""

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
