"""
Tail sampling in Jaeger v2 (deploy/jaeger.yaml), fed by the real Collector: every failed run and
every run whose time to first token exceeds the TTFT alert's threshold is stored, and of the
other runs exactly those whose trace id the probabilistic policy's hash selects.

The probabilistic policy is deterministic given the trace id: the tail-sampling processor keeps
a trace when FNV-1a-64(hash_salt + the 16 trace-id bytes) <= floor((2^64 - 1) * percentage/100).
So the test computes the kept set of the fast runs exactly, from the trace ids graphai exported,
and asserts set equality with what Jaeger's query API returns: no run missing, none extra.
With 10 % of N_FAST = 150 fast runs, "some but not all kept" fails only if the random trace ids
put 0 or 150 under the threshold (probability 0.9^150 + 0.1^150, about 1e-7).
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from graphai.telemetry import names as N
from tests._tools import poll
from tests.ops._ops import generator_module
from tests.stack._workload import GRAPH_NAME, RUN_SPANS, SLOW_FIRST_S
from tests.stack.conftest import (
    JAEGER_CONFIG,
    N_FAIL,
    N_FAST,
    N_SLOW,
    OVERFLOW_NODES,
    SERVICE,
    JaegerPorts,
    PlannedStack,
    load_jaeger_config,
    local_jaeger_config,
    policy,
)

THRESHOLD_S = generator_module("_rules").PRODUCTION.ttft.threshold_s
ARRIVE_TIMEOUT_S = 20.0
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fnv1a_64(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) % 2**64
    return h


def probabilistic_keeps(trace_id: str, salt: str, percentage: float) -> bool:
    """The tail-sampling processor's probabilistic policy (internal/sampling/probabilistic.go at
    v0.139.0, the release Jaeger v1.75.0 builds in), for one trace id."""
    threshold = int(Fraction(2**64 - 1) * Fraction(percentage / 100))
    return fnv1a_64(salt.encode() + bytes.fromhex(trace_id)) <= threshold


def test_slow_ttft_policy_is_the_alert_threshold_on_the_run_span_attribute() -> None:
    cfg = load_jaeger_config()
    (condition,) = policy(cfg, "slow-ttft")["ottl_condition"]["span"]
    m = re.fullmatch(r'attributes\["([\w.]+)"\] > (\d+(?:\.\d+)?)', condition)
    assert m, condition
    assert m.group(1) == N.RUN_TTFT
    assert float(m.group(2)) == THRESHOLD_S  # dashboards/_rules.py PRODUCTION.ttft.threshold_s
    assert policy(cfg, "failed-runs")["status_code"] == {"status_codes": ["ERROR"]}
    assert [p["name"] for p in cfg["processors"]["tail_sampling"]["policies"]] == [
        "failed-runs", "slow-ttft", "sample-rest"]  # fmt: skip
    assert cfg["service"]["pipelines"]["traces"]["processors"][0] == "tail_sampling"


def test_jaeger_validates_the_shipped_config_and_its_local_variant(
    jaeger_bin: Path, tmp_path: Path
) -> None:
    """``jaeger validate`` checks the structure only (it accepts an unknown policy type or a
    broken OTTL condition; those fail at start, which the other tests do)."""
    local = tmp_path / "jaeger.local.yaml"
    local.write_text(yaml.safe_dump(local_jaeger_config(JaegerPorts.free())))
    for config in (JAEGER_CONFIG, local):
        r = subprocess.run([str(jaeger_bin), "validate", f"--config={config}"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr


def _stored(stack: PlannedStack) -> dict[str, dict[str, Any]]:
    return {t["traceID"]: t for t in stack.jaeger.traces(SERVICE)}


def test_failed_and_slow_runs_are_all_kept_and_the_rest_by_trace_id_hash(
    planned_stack: PlannedStack,
) -> None:
    s = planned_stack
    rest = policy(load_jaeger_config(), "sample-rest")["probabilistic"]
    by_kind: dict[str, list[dict[str, Any]]] = {"fast": [], "slow": [], "fail": []}
    for run in s.runs:
        by_kind[run["kind"]].append(run)
    assert {k: len(v) for k, v in by_kind.items()} == {"fast": N_FAST, "slow": N_SLOW,
                                                       "fail": N_FAIL}  # fmt: skip

    # what the policies see: the run span's status and TTFT attribute, as graphai exported them
    assert {(r["status"], r["outcome"]) for r in by_kind["fail"]} == {("ERROR", "error")}
    assert {(r["status"], r["outcome"]) for r in by_kind["fast"] + by_kind["slow"]} == {
        ("UNSET", "ok")}  # fmt: skip
    assert all(r["ttft"] > THRESHOLD_S for r in by_kind["slow"]), SLOW_FIRST_S
    assert all(r["ttft"] < THRESHOLD_S for r in by_kind["fast"] + by_kind["fail"])

    def hashed(trace_id: str) -> bool:
        return probabilistic_keeps(trace_id, rest["hash_salt"], rest["sampling_percentage"])

    fast_kept = {r["trace_id"] for r in by_kind["fast"] if hashed(r["trace_id"])}
    assert 0 < len(fast_kept) < N_FAST, len(fast_kept)
    expected = fast_kept | {r["trace_id"] for r in by_kind["slow"] + by_kind["fail"]}
    if hashed(s.overflow_trace):  # the one run of the label-overflow graph, also fast
        expected.add(s.overflow_trace)

    s.await_sampling_decisions()

    def decided() -> dict[str, dict[str, Any]]:
        stored = _stored(s)
        if set(stored) != expected:
            raise AssertionError(f"missing {len(expected - set(stored))}, "
                                 f"extra {len(set(stored) - expected)}")  # fmt: skip
        return stored

    stored = poll(decided, ARRIVE_TIMEOUT_S, interval=0.5, what="Jaeger's kept set = expected")
    # a kept trace is kept whole: the run span and both node spans
    spans = {tid: len(t["spans"]) for tid, t in stored.items()}
    assert {n for tid, n in spans.items() if tid != s.overflow_trace} == {RUN_SPANS}
    if s.overflow_trace in spans:
        assert spans[s.overflow_trace] == OVERFLOW_NODES + 1
    names = {sp["operationName"] for t in stored.values() for sp in t["spans"]}
    assert f"{N.RUN_SPAN_PREFIX} {GRAPH_NAME}" in names
