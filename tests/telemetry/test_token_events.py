"""Token events on node spans: ``graphai.node.first_token`` exactly once, ``graphai.token``
events by the ``GRAPHAI_TOKEN_EVENTS`` policy (capped at 100 by default, the dropped ones
counted), and token text only with content capture on (truncated)."""

from __future__ import annotations

import pytest

from graphai import Graph, node
from graphai.telemetry import env
from tests._otel import Signals, make_signals
from tests.telemetry._support import execute_and_drain, linear_graph


class TestTokenEvents:
    """first_token exactly once; token events capped (default 100) and counted when dropped."""

    @staticmethod
    def streamer(n: int) -> Graph:
        @node(start=True, end=True, stream=True)
        async def gen(callback) -> dict:
            for i in range(n):
                await callback.acall(f"t{i}")
            return {}

        return Graph(name="ev").add_node(gen())

    async def test_capped_default(self, signals: Signals) -> None:
        await execute_and_drain(self.streamer(250), {})
        span = signals.span("gen")
        events = [e for e in span.events]
        assert [e.name for e in events].count("graphai.node.first_token") == 1
        assert events[0].name == "graphai.node.first_token"
        assert dict(events[0].attributes) == {"graphai.token.index": 0}
        tok = [e for e in events if e.name == "graphai.token"]
        assert len(tok) == 100
        assert [e.attributes["graphai.token.index"] for e in tok] == list(range(100))
        assert tok[5].attributes["graphai.token.size"] == 2
        assert span.attributes["graphai.node.token_events.dropped"] == 150
        assert span.dropped_events == 0

    @pytest.mark.parametrize(
        ("policy", "count", "indexes_head"),
        [("off", 0, []), ("all", 250, [0, 1, 2]), ("sampled", 35, [0, 1, 2])],
    )
    async def test_policies(self, policy: str, count: int, indexes_head: list[int]) -> None:
        s = make_signals(env.Settings(token_events=policy))
        try:
            await execute_and_drain(self.streamer(250), {})
            span = s.span("gen")
            tok = [e.attributes["graphai.token.index"] for e in span.events if e.name == "graphai.token"]
            first = [e for e in span.events if e.name == "graphai.node.first_token"]
            if policy == "all":
                # every token asked for: the SDK keeps the newest 128 events and counts the rest
                assert span.attributes["graphai.node.token_events.dropped"] == 0
                assert len(span.events) == 128 and span.dropped_events == 251 - 128
                assert tok[-1] == 249
            else:
                assert len(first) == 1
                assert len(tok) == count
                assert tok[: len(indexes_head)] == indexes_head
                assert span.attributes["graphai.node.token_events.dropped"] == 250 - count
            if policy == "sampled":
                assert tok == [*range(32), 64, 128, 192]
        finally:
            s.close()

    async def test_no_content_by_default(self, signals: Signals) -> None:
        await execute_and_drain(linear_graph(), {"q": "secret-input"})
        for s in signals.spans():
            blob = repr(dict(s.attributes)) + repr([dict(e.attributes) for e in s.events])
            assert "secret" not in blob.lower()
            assert "abbccc" not in blob and "graphai.token.text" not in blob

    async def test_content_capture_truncates(self) -> None:
        s = make_signals(env.Settings(capture_content=True, capture_max_chars=8))
        try:
            await execute_and_drain(linear_graph(), {"q": "secret-input-that-is-long"})
            llm = s.span("chat fake-1")
            texts = [e.attributes["graphai.token.text"] for e in llm.events if e.name == "graphai.token"]
            assert texts == ["a", "bb", "ccc"]
            assert llm.attributes["graphai.node.input"] == '{"q": "S…'
            assert llm.attributes["graphai.node.output"] == '{"answer…'
            run = s.span("invoke_workflow lin")
            assert run.attributes["gen_ai.input.messages"].endswith("…")
        finally:
            s.close()
