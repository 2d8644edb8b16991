"""
The Prometheus side of the telemetry contract (docs/telemetry.md, "Metrics").

Every series name and label the dashboards and rules use is spelled here once. The names are
what the OpenTelemetry Prometheus exporter writes for graphai's instruments: dots become
``_``, unit ``s`` appends ``_seconds``, ``{token}/s`` appends ``_per_second``, counters gain
``_total``; attribute ``graphai.graph.name`` becomes label ``graphai_graph_name``.

Only graphai's own ``graphai_*`` series: both GenAI conventions modes emit them unchanged
(``OTEL_SEMCONV_STABILITY_OPT_IN``, docs/telemetry.md "GenAI conventions: two modes"), so no
query or rule depends on the mode; ``gen_ai_*`` series change name with it and stay out of here.
"""

from __future__ import annotations

# labels
GRAPH = "graphai_graph_name"
NODE = "graphai_node_name"
KIND = "graphai_node_kind"
NODE_OUTCOME = "graphai_node_outcome"
RUN_OUTCOME = "graphai_run_outcome"
ERROR_TYPE = "error_type"
OVERFLOW_ATTRIBUTE = "attribute"
JOB = "job"  # added by the scrape, not by graphai

# histograms (series: NAME_bucket / NAME_sum / NAME_count)
GRAPH_DURATION = "graphai_graph_duration_seconds"
GRAPH_TTFT = "graphai_graph_time_to_first_token_seconds"
NODE_DURATION = "graphai_node_duration_seconds"
NODE_TTFT = "graphai_node_time_to_first_token_seconds"
NODE_TPOT = "graphai_node_time_per_output_token_seconds"
NODE_MAX_GAP = "graphai_node_inter_token_max_gap_seconds"
NODE_TOKEN_RATE = "graphai_node_output_token_rate_per_second"
DELIVERY_DELAY = "graphai_callback_delivery_delay_seconds"
HISTOGRAMS = (
    GRAPH_DURATION,
    GRAPH_TTFT,
    NODE_DURATION,
    NODE_TTFT,
    NODE_TPOT,
    NODE_MAX_GAP,
    NODE_TOKEN_RATE,
    DELIVERY_DELAY,
)

# counters and gauges
NODE_OUTPUT_TOKENS = "graphai_node_output_tokens_total"
LABEL_OVERFLOW = "graphai_telemetry_label_overflow_total"
EXPORT_FAILURES = "graphai_telemetry_export_failures_total"
EXPORT_SIGNAL = "signal"
NODE_ACTIVE = "graphai_node_active"
STREAM_STALLED = "graphai_stream_stalled"
SCALARS = (NODE_OUTPUT_TOKENS, LABEL_OVERFLOW, EXPORT_FAILURES, NODE_ACTIVE, STREAM_STALLED)

# every series name a query may use
SERIES = frozenset(
    [f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "sum", "count")] + list(SCALARS)
)

# TTFT bucket edges (s); an SLO threshold must be one of them (le="1" is a real series)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 7.5, 10)
