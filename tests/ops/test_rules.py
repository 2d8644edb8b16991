"""
The Prometheus rules: promtool accepts them, the promtool unit tests pass and cover a firing
and a silent case per alert, every alert is labelled and annotated with a runbook section that
exists, and the fast-test variant differs from production only in durations.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from tests.ops._ops import (
    ALERTS,
    FAST_ALERTS,
    OPERATIONS_MD,
    RULE_TESTS,
    alert_rules,
    generator_module,
    github_anchors,
    promtool,
    rules,
    run,
    seconds,
)

SEVERITIES = {"critical", "warning", "info"}
_DURATION = re.compile(r"(?<![\d.])\d+[smhd](?!\w)")


def test_rule_files_pass_promtool_check() -> None:
    proc = run([promtool(), "check", "rules", str(ALERTS), str(FAST_ALERTS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 2


def test_promtool_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "dashboards/alerts/tests/*.yml"
    proc = run([promtool(), "test", "rules", *map(str, RULE_TESTS)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    """Negative control: the same fixtures against rules with one `for:` shortened fail."""
    alerts = tmp_path / "alerts"
    (alerts / "tests").mkdir(parents=True)
    text = ALERTS.read_text()
    assert "for: 10m" in text
    (alerts / ALERTS.name).write_text(text.replace("for: 10m", "for: 9m", 1))
    for t in RULE_TESTS:
        (alerts / "tests" / t.name).write_text(t.read_text())
    proc = run([promtool(), "test", "rules", *map(str, sorted((alerts / "tests").glob("*.yml")))])
    assert proc.returncode == 1, proc.stdout
    assert "FAILED" in proc.stderr  # promtool reports failures on stderr


def test_every_alert_has_a_firing_case_and_a_silent_case() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../graphai-alerts.yml"], path
        for group in doc["tests"]:
            assert group.get("name"), f"{path.name}: name each case with a sentence"
            for case in group.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = set(alert_rules())
    assert names - fires == set(), "alerts without a firing test"
    assert names - silent == set(), "alerts without a must-not-fire test"


def test_firing_cases_assert_exact_labels_and_annotations() -> None:
    alerts = alert_rules()
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                for exp in case.get("exp_alerts") or []:
                    rule = alerts[case["alertname"]]
                    assert exp["exp_labels"]["severity"] == rule["labels"]["severity"]
                    assert set(exp["exp_annotations"]) == set(rule["annotations"]), path.name


def test_every_alert_is_labelled_and_annotated_with_an_existing_runbook_anchor() -> None:
    anchors = github_anchors(OPERATIONS_MD.read_text())
    for name, rule in alert_rules().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        ann = rule["annotations"]
        assert ann["summary"] and "{{ $labels." in ann["description"], name
        path, _, anchor = ann["runbook_url"].partition("#")
        assert path.endswith("docs/operations.md"), name
        assert anchor == name.lower(), name
        assert anchor in anchors, f"docs/operations.md has no section for #{anchor}"


def test_slo_alerts_guard_against_quiet_traffic() -> None:
    for name, rule in alert_rules().items():
        if name.startswith(("GraphaiTTFT", "GraphaiStreamingThroughput", "GraphaiNodeError")):
            assert re.search(r"\n\s*and .*:rate\w+ >= [\d.]+$", rule["expr"]), name


def test_fast_test_variant_differs_from_production_only_in_durations() -> None:
    def normalized(path: Path) -> list[dict]:
        out = []
        for r in rules(path):
            r = {k: _DURATION.sub("D", v) if isinstance(v, str) else v for k, v in r.items()}
            if "annotations" in r:
                r["annotations"] = {k: _DURATION.sub("D", v) for k, v in r["annotations"].items()}
            out.append(r)
        return out

    assert normalized(FAST_ALERTS) == normalized(ALERTS)
    assert rules(FAST_ALERTS) != rules(ALERTS)


def test_fast_test_variant_is_fast_enough_for_the_live_tests() -> None:
    for r in rules(FAST_ALERTS):
        assert seconds(r.get("for", "0s")) <= 10, r.get("alert")
        for window in re.findall(r"\[(\w+)\]", r["expr"]):
            assert seconds(window) <= 120, (r.get("record") or r.get("alert"), window)


def test_alert_parameters_are_documented_with_their_values() -> None:
    """docs/operations.md's parameter table lists every field of the rule parameters with its
    production and fast-test value."""
    r = generator_module("_rules")
    rows = {}
    for line in OPERATIONS_MD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            for i, key in enumerate(re.findall(r"`([\w.]+)`", cells[0])):
                rows[key] = [cells[1].split(" / ")[i], cells[2].split(" / ")[i]]
    for section in ("ttft", "throughput", "stalls", "node_errors"):
        for f in fields(getattr(r.PRODUCTION, section)):
            key = f"{section}.{f.name}"
            assert key in rows, f"docs/operations.md: no row for `{key}`"
            for documented, params in zip(rows[key], (r.PRODUCTION, r.FAST_TEST), strict=True):
                value = getattr(getattr(params, section), f.name)
                ok = float(documented) == value if isinstance(value, float) else documented == value
                assert ok, f"`{key}`: documented {documented!r}, code has {value!r}"


def test_the_ttft_slo_threshold_is_a_bucket_edge_of_the_real_histogram() -> None:
    """The SLI reads the bucket at the threshold: graphai must have a bucket there."""
    from graphai.telemetry import names

    r = generator_module("_rules")
    m = generator_module("_metrics")
    assert r.PRODUCTION.ttft.threshold_s in names.TTFT_BUCKETS
    assert tuple(m.TTFT_BUCKETS) == tuple(names.TTFT_BUCKETS)
