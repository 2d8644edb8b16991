"""The public surface: upstream's names first-class, every name importable, __all__ sorted."""

from __future__ import annotations

import graphai
import graphai.callback
import graphai.graph
import graphai.nodes
import graphai.telemetry
import graphai.utils

UPSTREAM_TOP = ["node", "router", "Callback", "Graph", "BranchError", "MaxStepsError"]


def test_top_level_all_is_sorted_and_importable() -> None:
    assert graphai.__all__ == sorted(graphai.__all__)
    for name in graphai.__all__:
        assert hasattr(graphai, name), name
    assert set(UPSTREAM_TOP) <= set(graphai.__all__)


def test_upstream_module_names_exist() -> None:
    for name in ("Graph", "GraphError", "GraphCompileError", "MaxStepsError", "NodeProtocol",
                 "BranchCondition", "BranchError", "Edge", "JoinEdge", "BranchEdge"):
        assert hasattr(graphai.graph, name), name
    for name in ("Callback", "EventCallback", "GraphEvent", "GraphEventType", "CallbackProtocol",
                 "StrEnum", "log_stream"):
        assert hasattr(graphai.callback, name), name
    for name in ("node", "router"):
        assert hasattr(graphai.nodes, name), name
    for name in ("logger", "setup_custom_logger", "FunctionSchema", "Parameter", "OpenAIAPI",
                 "get_schemas", "openai_type_mapping", "StrEnum"):
        assert hasattr(graphai.utils, name), name


def test_telemetry_surface() -> None:
    assert sorted(graphai.telemetry.__all__) == [
        "TelemetryHandle",
        "active_streams",
        "configure",
        "instrument",
        "is_instrumented",
        "uninstrument",
    ]
    for name in graphai.telemetry.__all__:
        assert getattr(graphai.telemetry, name) is not None
