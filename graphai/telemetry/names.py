"""
Every span, attribute, event and metric name graphai emits, with units and bucket sets.

This module is the telemetry contract (documented in ``docs/telemetry.md``): dashboards, alert
rules, docs and users' queries rely on these names. ``tests/telemetry/test_docs_list_every_name.py`` keeps
``docs/telemetry.md`` in sync with it.

GenAI names come in two modes (``graphai.telemetry._semconv`` picks one per instrumentation,
from ``OTEL_SEMCONV_STABILITY_OPT_IN``); every ``graphai.*`` name is the same in both.

- default: the GenAI conventions of open-telemetry/semantic-conventions **v1.41.0** (tag commit
  e018fe6f91862f5ed63c082f87697cddac596784), the last core release that holds them: the
  ``invoke_workflow`` span with ``gen_ai.workflow.name``, the ``gen_ai.client.operation.*``
  histograms. Kept by default, as the conventions' transition rule asks.
- ``gen_ai_latest_experimental``: open-telemetry/semantic-conventions-genai **v0.1.0**, whose
  CHANGELOG merges the workflow span into ``gen_ai.invoke_agent.internal`` (operation name stays
  ``invoke_workflow``, ``gen_ai.workflow.name`` gives way to ``gen_ai.agent.name``, workflows are
  recorded on ``gen_ai.invoke_agent.duration``) and whose ``client-inference.md`` renames the
  inference histograms to ``gen_ai.client.inference.*`` (``gen_ai.client.operation.duration``
  stays for non-inference operations only). Names checked against the v0.1.0 tag's
  ``CHANGELOG.md``, ``docs/gen-ai/gen-ai-metrics.md`` and ``docs/gen-ai/client-inference.md``;
  units, bucket advice and metric attributes against the repository's
  ``docs/gen-ai/client-inference.md`` at 024a4f944a1291fcb627c9c47da69e79868dd15e and
  ``docs/gen-ai/gen-ai-metrics.md`` at 004902b8cb70aa5ae6ca4ae07132b7daabcd3e10 (the same
  metrics, same names, before the release).
"""

from __future__ import annotations

from typing import Final

from graphai import _dist, _hooks, _log

SCOPE: Final = "graphai"
"""Instrumentation scope name of the tracer and the meter (version = package version)."""

# -- span names ---------------------------------------------------------------------------------
RUN_SPAN_PREFIX: Final = "invoke_workflow"
"""Run span: ``invoke_workflow {graph name}``."""
AGENT_SPAN_PREFIX: Final = "invoke_agent"
TOOL_SPAN_PREFIX: Final = "execute_tool"
LLM_SPAN_PREFIX: Final = "chat"

# -- span attributes ------------------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_RESPONSE_TTFC: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
ERROR_TYPE: Final = "error.type"

GRAPH_NAME: Final = "graphai.graph.name"
RUN_ID: Final = "graphai.run.id"
RUN_OUTCOME: Final = "graphai.run.outcome"
RUN_TTFT: Final = "graphai.run.time_to_first_token"
RUN_OUTPUT_TOKENS: Final = "graphai.run.output.tokens"
RUN_STEPS: Final = "graphai.run.steps"

NODE_NAME: Final = "graphai.node.name"
NODE_KIND: Final = "graphai.node.kind"
NODE_STREAM: Final = "graphai.node.stream"
NODE_STEP: Final = "graphai.node.step"
NODE_OUTCOME: Final = "graphai.node.outcome"
NODE_OUTPUT_TOKENS: Final = "graphai.node.output.tokens"
NODE_TPOT: Final = "graphai.node.time_per_output_token"
NODE_MAX_GAP: Final = "graphai.node.inter_token.max_gap"
NODE_EVENTS_DROPPED: Final = "graphai.node.token_events.dropped"
NODE_INPUT: Final = "graphai.node.input"
NODE_OUTPUT: Final = "graphai.node.output"
ROUTER_CHOICE: Final = "graphai.router.choice"
JOIN_WAIT: Final = "graphai.join.wait"

# -- span events ----------------------------------------------------------------------------------
EVENT_FIRST_TOKEN: Final = "graphai.node.first_token"
EVENT_TOKEN: Final = "graphai.token"
TOKEN_INDEX: Final = "graphai.token.index"
TOKEN_SIZE: Final = "graphai.token.size"
TOKEN_TEXT: Final = "graphai.token.text"

# -- outcomes -------------------------------------------------------------------------------------
OUTCOME_OK: Final = _hooks.OK
OUTCOME_ERROR: Final = _hooks.ERROR
OUTCOME_CANCELLED: Final = _hooks.CANCELLED
OTHER: Final = "_OTHER"
"""Label value that replaces names beyond the cardinality limit."""

NODE_KINDS: Final = ("node", "router", "llm", "agent", "tool")

# -- GenAI values ---------------------------------------------------------------------------------
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
"""``gen_ai.operation.name`` of the run span (both modes) and of its
``gen_ai.invoke_agent.duration`` samples (``gen_ai_latest_experimental``)."""
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_CHAT: Final = "chat"
TOOL_TYPE_FUNCTION: Final = "function"
"""``gen_ai.tool.type`` of ``tool`` nodes (the application runs the tool's code)."""

# -- metrics: (name, unit, description) -----------------------------------------------------------
GRAPH_DURATION: Final = "graphai.graph.duration"
GRAPH_TTFT: Final = "graphai.graph.time_to_first_token"
NODE_DURATION: Final = "graphai.node.duration"
NODE_TTFT: Final = "graphai.node.time_to_first_token"
NODE_TPOT_METRIC: Final = "graphai.node.time_per_output_token"
NODE_MAX_GAP_METRIC: Final = "graphai.node.inter_token.max_gap"
NODE_TOKEN_RATE: Final = "graphai.node.output.token_rate"
NODE_TOKENS: Final = "graphai.node.output.tokens"
NODE_ACTIVE: Final = "graphai.node.active"
STREAM_STALLED: Final = "graphai.stream.stalled"
DELIVERY_DELAY: Final = "graphai.callback.delivery_delay"
LABEL_OVERFLOW: Final = "graphai.telemetry.label_overflow"
INTERNAL_ERRORS: Final = "graphai.telemetry.internal_errors"
EXPORT_FAILURES: Final = "graphai.telemetry.export_failures"
NODE_LATE_TOKENS: Final = "graphai.node.late_tokens"
GENAI_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
GENAI_TTFC: Final = "gen_ai.client.operation.time_to_first_chunk"
GENAI_TPOC: Final = "gen_ai.client.operation.time_per_output_chunk"
# gen_ai_latest_experimental only (semantic-conventions-genai v0.1.0)
GENAI_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
GENAI_INFERENCE_TTFC: Final = "gen_ai.client.inference.time_to_first_chunk"
GENAI_INFERENCE_TPOC: Final = "gen_ai.client.inference.time_per_output_chunk"
GENAI_INVOKE_AGENT_DURATION: Final = "gen_ai.invoke_agent.duration"
"""Runs (``gen_ai.operation.name`` = ``invoke_workflow``) and ``agent`` nodes (``invoke_agent``)."""
GENAI_EXECUTE_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"

OVERFLOW_ATTRIBUTE: Final = "attribute"
"""Attribute of ``graphai.telemetry.label_overflow``: which attribute overflowed."""
INTERNAL_ERROR_WHERE: Final = "where"
"""Attribute of ``graphai.telemetry.internal_errors``: the seam call that failed."""
EXPORT_SIGNAL: Final = "signal"
"""Attribute of ``graphai.telemetry.export_failures``: ``traces``, ``metrics`` or ``logs``."""
REDACTED: Final = "[redacted: content capture is off]"
"""``exception.message`` of exception events while content capture is off."""

# -- buckets (seconds, tokens/s) ------------------------------------------------------------------
DURATION_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28,
    2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TTFT_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 7.5, 10)
GAP_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10,
)  # fmt: skip
TOKEN_RATE_BUCKETS: Final = (
    1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000,
)  # fmt: skip
# GenAI bucket advice. GENAI_DURATION_BUCKETS: the conventions' doubling set (every GenAI duration
# and, in gen_ai_latest_experimental, the inference chunk histograms). GENAI_TTFC_BUCKETS and
# GENAI_TPOC_BUCKETS (default mode) are v1.41.0's advice for gen_ai.server.time_to_first_token and
# gen_ai.server.time_per_output_token, not the doubling set v1.41.0 gives the client chunk
# histograms; kept as they are (the default mode does not change what it emits).
GENAI_DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
GENAI_TTFC_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
GENAI_TPOC_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
GENAI_AGENT_DURATION_BUCKETS: Final = (
    0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6,
)  # fmt: skip

# name -> (kind, unit, description, buckets or None, Prometheus series base name)
METRICS: Final[dict[str, tuple[str, str, str, tuple[float, ...] | None, str]]] = {
    GRAPH_DURATION: ("histogram", "s", "Duration of graph runs.", DURATION_BUCKETS,
                     "graphai_graph_duration_seconds"),
    GRAPH_TTFT: ("histogram", "s", "User-perceived time from execute() to the first token of any node.",
                 TTFT_BUCKETS, "graphai_graph_time_to_first_token_seconds"),
    NODE_DURATION: ("histogram", "s", "Duration of node runs.", DURATION_BUCKETS,
                    "graphai_node_duration_seconds"),
    NODE_TTFT: ("histogram", "s", "Time from a streaming node's start to its first token.",
                TTFT_BUCKETS, "graphai_node_time_to_first_token_seconds"),
    NODE_TPOT_METRIC: ("histogram", "s", "Mean gap between output tokens of a node run.",
                       GAP_BUCKETS, "graphai_node_time_per_output_token_seconds"),
    NODE_MAX_GAP_METRIC: ("histogram", "s", "Largest gap between two tokens of a node run.",
                          GAP_BUCKETS, "graphai_node_inter_token_max_gap_seconds"),
    NODE_TOKEN_RATE: ("histogram", "{token}/s",
                      "Tokens after the first per second after the first, per node run.",
                      TOKEN_RATE_BUCKETS, "graphai_node_output_token_rate_per_second"),
    NODE_TOKENS: ("counter", "{token}", "Tokens emitted by nodes.", None,
                  "graphai_node_output_tokens_total"),
    NODE_ACTIVE: ("gauge", "{node}", "Node runs in progress.", None, "graphai_node_active"),
    STREAM_STALLED: ("gauge", "{stream}",
                     "Streaming node runs with no token for longer than GRAPHAI_STALL_AFTER_S.",
                     None, "graphai_stream_stalled"),
    DELIVERY_DELAY: ("histogram", "s", "Time from a token's put to its take by the consumer (sampled).",
                     GAP_BUCKETS, "graphai_callback_delivery_delay_seconds"),
    LABEL_OVERFLOW: ("counter", "{value}", "Label values replaced by _OTHER (cardinality guard).",
                     None, "graphai_telemetry_label_overflow_total"),
    NODE_LATE_TOKENS: ("counter", "{token}", "Tokens sent through a node's callback after the node ended (dropped).",
                       None, "graphai_node_late_tokens_total"),
    INTERNAL_ERRORS: ("counter", "{error}", "Failures inside graphai's telemetry (the graph carried on).",
                      None, "graphai_telemetry_internal_errors_total"),
    EXPORT_FAILURES: ("counter", "{export}", "Failed OTLP exports of configure()'s exporters, per signal.",
                      None, "graphai_telemetry_export_failures_total"),
    GENAI_OPERATION_DURATION: ("histogram", "s", "GenAI operation duration (llm nodes).",
                               GENAI_DURATION_BUCKETS, "gen_ai_client_operation_duration_seconds"),
    GENAI_TTFC: ("histogram", "s", "Time to the first chunk of a GenAI response (llm nodes).",
                 GENAI_TTFC_BUCKETS, "gen_ai_client_operation_time_to_first_chunk_seconds"),
    GENAI_TPOC: ("histogram", "s", "Time per output chunk after the first (llm nodes).",
                 GENAI_TPOC_BUCKETS, "gen_ai_client_operation_time_per_output_chunk_seconds"),
    GENAI_INFERENCE_DURATION: ("histogram", "s", "GenAI client inference duration (llm nodes).",
                               GENAI_DURATION_BUCKETS, "gen_ai_client_inference_duration_seconds"),
    GENAI_INFERENCE_TTFC: ("histogram", "s", "Time to the first chunk of a GenAI response (llm nodes).",
                           GENAI_DURATION_BUCKETS, "gen_ai_client_inference_time_to_first_chunk_seconds"),
    GENAI_INFERENCE_TPOC: ("histogram", "s", "Time per output chunk after the first (llm nodes).",
                           GENAI_DURATION_BUCKETS, "gen_ai_client_inference_time_per_output_chunk_seconds"),
    GENAI_INVOKE_AGENT_DURATION: ("histogram", "s", "Duration of graph runs (workflows) and agent nodes.",
                                  GENAI_AGENT_DURATION_BUCKETS, "gen_ai_invoke_agent_duration_seconds"),
    GENAI_EXECUTE_TOOL_DURATION: ("histogram", "s", "Duration of tool nodes.",
                                  GENAI_DURATION_BUCKETS, "gen_ai_execute_tool_duration_seconds"),
}  # fmt: skip

# -- log events ------------------------------------------------------------------------------------
LOG_RUN_START: Final = "graph.run.start"
LOG_RUN_END: Final = "graph.run.end"
LOG_NODE_START: Final = "node.start"
LOG_NODE_END: Final = "node.end"
LOG_NODE_ERROR: Final = "node.error"
LOG_EXPORT_FAILED: Final = "telemetry.export_failed"
"""Warning: an OTLP export failed (at most once a minute per signal, with the failure count)."""
LOG_PROVIDERS_EXIST: Final = "telemetry.providers_exist"
"""Warning: the application already set global providers; configure() uses them as they are."""
NOT_STARTED_PROMETHEUS: Final = "prometheus /metrics"
"""``not_started`` entry of ``telemetry.providers_exist``: adopted meter provider, no endpoint."""
NOT_STARTED_OTLP: Final = "otlp exporters"
"""``not_started`` entry of ``telemetry.providers_exist``: OTLP was configured, none was added."""
LOG_PROMETHEUS_STARTED: Final = "telemetry.prometheus_started"
"""Info: the ``/metrics`` endpoint listens (``addr``, ``pid``; ``fallback_from`` when the first port of
a ``GRAPHAI_PROMETHEUS_PORTS`` range was taken; ``after_fork`` in a forked child; ``retried`` when
it bound a port freed after every port had been taken)."""
LOG_FORK_RESOURCE_STALE: Final = "telemetry.fork_resource_stale"
"""Warning: after a fork, ``service.instance.id`` could not be renewed on this SDK."""
LOG_PROMETHEUS_FAILED: Final = "telemetry.prometheus_failed"
"""Warning: the ``/metrics`` endpoint could not be started (address in use, say); with
``retrying_for_s`` when every port was taken and graphai tries again, with ``gave_up_after_s`` when
those retries ended."""
LOG_ALREADY_INSTRUMENTED: Final = "telemetry.already_instrumented"
"""Warning: ``instrument()`` with the providers and settings already installed; nothing changed."""
LOG_CONFIG_INVALID: Final = "telemetry.config_invalid"
"""Warning: an invalid ``GRAPHAI_*`` value was replaced by its default (once per value)."""
LOG_BRANCH_FAILED: Final = _log.LOG_BRANCH_FAILED
LOG_BRANCH_CONDITION_FAILED: Final = _log.LOG_BRANCH_CONDITION_FAILED
LOG_CLOSE_FAILED: Final = _log.LOG_CLOSE_FAILED
LOG_LATE_TOKEN: Final = _log.LOG_LATE_TOKEN
LOG_INSTALL_CONFLICT: Final = _dist.LOG_INSTALL_CONFLICT
"""Warning: graphai-lib is installed beside graphai (both own ``graphai/``); with the fix."""
LOG_INTERNAL_ERROR: Final = "telemetry.internal_error"
"""Warning: a failure inside graphai's telemetry; the graph carries on. At most once a minute
per place, with ``suppressed`` = the failures not logged since the last line."""
