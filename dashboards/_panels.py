"""
Panel and variable builders on grafana-foundation-sdk (Grafana 11.6 target): one place for
units, legends, descriptions, data links to traces, and stable panel ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from urllib.parse import quote

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders.dashboard import (
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
)
from grafana_foundation_sdk.builders.heatmap import (
    HeatmapColorOptions,
    RowsHeatmapOptions,
    YAxisConfig,
)
from grafana_foundation_sdk.builders.heatmap import Panel as Heatmap
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    HeatmapCellLayout,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode, HeatmapColorScale
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
TOKENS_PER_S = "count:tok/s"

# A target: (expr, legend)
Target = tuple[str, str]


# -- variables ------------------------------------------------------------------------------
def datasource_variable(name: str, label: str, plugin: str) -> DatasourceVariable:
    return DatasourceVariable(name).label(label).type(plugin)


def label_variable(name: str, label: str, query: str, *, multi: bool = True) -> QueryVariable:
    """A variable listing label values (``label_values(series, label)``); "All" is ``.*``."""
    v = (
        QueryVariable(name)
        .label(label)
        .datasource(PROMETHEUS)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        v = v.multi(True).include_all(True).all_value(".*")
    return v


# -- links to traces --------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"(\$\{[^}]+\})")


def _encode_keeping_placeholders(text: str) -> str:
    """Percent-encode ``text`` except Grafana's ``${...}`` placeholders, which Grafana must see
    verbatim to interpolate them."""
    return "".join(
        part if _PLACEHOLDER.fullmatch(part) else quote(part, safe="")
        for part in _PLACEHOLDER.split(text)
    )


def explore_traces_url(tags: str) -> str:
    """An Explore URL searching the Jaeger datasource (``$jaeger``) for spans of service
    ``$service`` carrying ``tags`` (logfmt), over the panel's time range."""
    pane = {
        "traces": {
            "datasource": "${jaeger}",
            "queries": [
                {
                    "refId": "A",
                    "datasource": {"type": "jaeger", "uid": "${jaeger}"},
                    "queryType": "search",
                    "service": "${service}",
                    "tags": tags,
                    "limit": 20,
                }
            ],
            "range": {"from": "${__from}", "to": "${__to}"},
        }
    }
    panes = json.dumps(pane, separators=(",", ":"), sort_keys=True)
    return "/explore?schemaVersion=1&orgId=1&panes=" + _encode_keeping_placeholders(panes)


def trace_links(tags: str) -> list[DashboardLink]:
    return [
        DashboardLink("Traces in Jaeger (Explore)").url(explore_traces_url(tags)).target_blank(True)
    ]


# -- panels -----------------------------------------------------------------------------------
def _queries(
    targets: Sequence[Target], fmt: PromQueryFormat | None = None, *, exemplars: bool = False
) -> list[PromQuery]:
    out = []
    for i, (expr, legend) in enumerate(targets):
        q = PromQuery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
        if fmt is not None:
            q = q.format(fmt)
        if exemplars:
            q = q.exemplar(True)
        out.append(q)
    return out


def timeseries(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    max_value: float | None = None,
    links: list[DashboardLink] | None = None,
    width: int = 12,
    exemplars: bool = False,
) -> Timeseries:
    p = (
        Timeseries()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .min(0)
        .span(width)
        .height(8)
        .fill_opacity(10)
        .line_width(1)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(LegendDisplayMode.LIST)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_b.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING)
        )
        .targets(_queries(targets, exemplars=exemplars))
    )
    if max_value is not None:
        p = p.max(max_value)
    if links:
        p = p.data_links(links)
    return p


def stat(title: str, description: str, expr: str, *, unit: str, width: int = 6) -> Stat:
    return (
        Stat()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .span(width)
        .height(4)
        .no_value("No traffic")
        .graph_mode(BigValueGraphMode.AREA)
        .color_mode(BigValueColorMode.NONE)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .targets(_queries([(expr, "")]))
    )


def heatmap(title: str, description: str, expr: str, *, unit: str, width: int = 12) -> Heatmap:
    """A heatmap of a classic histogram's buckets (``expr`` gives per-``le`` increases)."""
    return (
        Heatmap()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .span(width)
        .height(8)
        .calculate(False)
        .rows_frame(RowsHeatmapOptions().layout(HeatmapCellLayout.LE))
        .color(
            HeatmapColorOptions()
            .mode(HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
        )
        .y_axis(YAxisConfig().unit(unit))
        .targets(_queries([(expr, "{{le}}")], PromQueryFormat.HEATMAP))
    )
