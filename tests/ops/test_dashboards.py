"""
The generated Grafana dashboards: committed JSON is fresh, structurally sound, names only
contract series, divides safely, links runs to traces, and every query is valid PromQL.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote

import yaml

from tests.ops._ops import (
    CHECK_WINDOWS,
    DASHBOARDS,
    REPO,
    dashboards,
    panels,
    promtool,
    queries,
    run,
    series_names,
    substitute,
)

EXPECTED_UIDS = {
    "graphai-graph-runs.json": "graphai-graph-runs",
    "graphai-nodes-streaming.json": "graphai-nodes-streaming",
}
TEMPLATE_VALUES = {"job": ".*", "graph": ".*", "node": ".*", **CHECK_WINDOWS}


def _generate(*args: str, root: Path = REPO) -> tuple[int, str]:
    proc = run([sys.executable, str(root / "dashboards" / "generate.py"), *args], cwd=root)
    return proc.returncode, proc.stdout + proc.stderr


def test_committed_generated_files_are_fresh() -> None:
    rc, out = _generate("--check")
    assert rc == 0, out


def test_check_mode_fails_on_a_stale_or_stray_file_and_names_the_command(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(DASHBOARDS, copy / "dashboards", ignore=shutil.ignore_patterns("__pycache__"))
    stale = copy / "dashboards" / "grafana" / "graphai-graph-runs.json"
    stale.write_text(stale.read_text().replace("Runs / s", "Runs per second"))
    rc, out = _generate("--check", root=copy)
    assert rc == 1
    assert "stale: dashboards/grafana/graphai-graph-runs.json" in out
    assert "Run: python dashboards/generate.py" in out

    rc, out = _generate(root=copy)  # regenerating repairs it
    assert rc == 0, out
    (copy / "dashboards" / "grafana" / "hand-made.json").write_text("{}")
    rc, out = _generate("--check", root=copy)
    assert rc == 1
    assert "stray (no code generates it): dashboards/grafana/hand-made.json" in out


def test_dashboards_have_stable_uids_titles_and_tags() -> None:
    boards = dashboards()
    assert {name: d["uid"] for name, d in boards.items()} == EXPECTED_UIDS
    for d in boards.values():
        assert d["title"].startswith("graphai / ")
        assert "graphai" in d["tags"]
        assert d["schemaVersion"] >= 39, "Grafana 11 dashboards (SDK pinned to the 11.6 target)"
        ids = [p["id"] for p in d["panels"]]
        assert ids == list(range(1, len(ids) + 1)), "panel ids are stable and unique"


def test_dashboards_have_datasource_graph_and_node_variables() -> None:
    for name, d in dashboards().items():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["jaeger"]["query"] == "jaeger"
        assert "graphai_graph_name)" in variables["graph"]["query"]
        assert variables["graph"]["includeAll"] and variables["graph"]["allValue"] == ".*"
        if name == "graphai-nodes-streaming.json":
            assert "graphai_node_name)" in variables["node"]["query"]
            assert '$graph"' in variables["node"]["query"], "node list follows the graph choice"
        for v in variables.values():
            if v["type"] == "query":
                assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_panel_has_a_unit_a_datasource_and_a_description_naming_its_metrics() -> None:
    for d in dashboards().values():
        for p in panels(d):
            title = f"{d['uid']}/{p['title']}"
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
            unit = (
                p["options"]["yAxis"].get("unit")
                if p["type"] == "heatmap"
                else p["fieldConfig"]["defaults"].get("unit")
            )
            assert unit, f"{title}: no unit"
            described = set(
                re.findall(
                    r"`(graphai_\w+?)(?:_bucket|_count)?(?:\{[^`]*\})?`", p.get("description", "")
                )
            )
            used = {
                re.sub(r"_(bucket|count|sum)$", "", n)
                for t in p["targets"]
                for n in series_names(t["expr"])
            }
            assert described & used, f"{title}: description names none of {sorted(used)}"


def test_queries_select_only_series_of_the_telemetry_contract() -> None:
    from graphai.telemetry import names

    contract = set()
    for kind, *_rest, base in names.METRICS.values():
        contract |= (
            {f"{base}_{s}" for s in ("bucket", "sum", "count")} if kind == "histogram" else {base}
        )
    for uid, panel, target in queries():
        unknown = series_names(target["expr"]) - contract
        assert not unknown, f"{uid}/{panel['title']}: {sorted(unknown)} not in names.METRICS"


def test_ratios_drop_zero_denominators_and_quantiles_skip_idle_groups() -> None:
    """vLLM's divide(): ``a / (b > 0)`` so idle panels show no data instead of NaN; likewise a
    quantile only for groups with observations in the window."""
    for uid, panel, target in queries():
        expr = target["expr"]
        for m in re.finditer(r" / ", expr):
            rest = expr[m.end() :]
            assert rest.startswith("("), f"{uid}/{panel['title']}: bare division in {expr}"
            depth = 0
            for i, ch in enumerate(rest):
                depth += {"(": 1, ")": -1}.get(ch, 0)
                if depth == 0:
                    assert rest[:i].endswith("> 0"), f"{uid}/{panel['title']}: {expr}"
                    break
        if "histogram_quantile(" in expr:
            assert ") and on (" in expr and "_count" in expr, f"{uid}/{panel['title']}: {expr}"


def _links(panel: dict) -> list[dict]:
    return panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])


def test_run_and_node_panels_link_to_jaeger_traces_in_explore() -> None:
    linked = 0
    for d in dashboards().values():
        for p in panels(d):
            for link in _links(p):
                linked += 1
                assert set(link) == {"title", "url", "targetBlank"}, "a Grafana DataLink"
                path, _, panes = link["url"].partition("panes=")
                assert path == "/explore?schemaVersion=1&orgId=1&"
                pane = next(iter(json.loads(unquote(panes)).values()))
                assert pane["datasource"] == "${jaeger}"
                (query,) = pane["queries"]
                assert query["datasource"] == {"type": "jaeger", "uid": "${jaeger}"}
                assert query["queryType"] == "search" and query["service"] == "${service}"
                assert pane["range"] == {"from": "${__from}", "to": "${__to}"}
                # the link's label references must be labels every series of the panel keeps
                for label in re.findall(r"__field\.labels\.(\w+)", query["tags"]):
                    for t in p["targets"]:
                        assert re.search(rf"by \([^)]*\b{label}\b", t["expr"]), (p["title"], label)
    runs = dashboards()["graphai-graph-runs.json"]
    run_panels = [p for p in panels(runs) if p["type"] == "timeseries"]
    assert all(_links(p) for p in run_panels), "every run time series links to its traces"
    assert linked >= len(run_panels)


def test_every_panel_query_is_valid_promql_for_promtool(tmp_path: Path) -> None:
    """Wrap each query (variables substituted) as a recording rule and let promtool parse it;
    a deliberately broken copy must fail, so the check can fail."""
    tool = promtool()
    rules = [
        {
            "record": f"dashboard:{uid.replace('-', '_')}:panel{panel['id']}_{t['refId']}",
            "expr": substitute(t["expr"], TEMPLATE_VALUES),
        }
        for uid, panel, t in queries()
    ]
    assert len(rules) >= 25
    assert not any("$" in r["expr"] for r in rules)
    good = tmp_path / "dashboard-queries.yml"
    good.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = run([tool, "check", "rules", str(good)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout

    broken = tmp_path / "broken.yml"
    rules[0] = {**rules[0], "expr": rules[0]["expr"] + ")"}
    broken.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert run([tool, "check", "rules", str(broken)]).returncode == 1
