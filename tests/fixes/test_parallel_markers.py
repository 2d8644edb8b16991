"""Markers under parallel execution (fix 2): each node's start/end markers carry its own name
and every token is attributed to the node that produced it, for ``Callback`` and
``EventCallback``."""

import asyncio

from graphai import Graph, node
from graphai.callback import EventCallback, GraphEventType
from tests._stream import run_with_consumer


def _parallel_streamers(use_node_name):
    @node(start=True)
    async def start():
        return {}

    def streamer(name):
        async def f(callback):
            for i in (1, 2):
                if use_node_name:
                    await callback.acall(f"{name}-{i}", node_name=name)
                else:
                    await callback.acall(f"{name}-{i}")
                await asyncio.sleep(0)
            return {name: True}

        return node(f, name=name, stream=True)

    p, q = streamer("p"), streamer("q")

    @node(end=True)
    async def end():
        return {}

    g = Graph()
    for n in (start, p, q, end):
        g.add_node(n)
    return g.add_parallel(start, [p, q]).add_join([p, q], end)


class TestFix02MarkersCarryTheirOwnNode:
    """Under parallel execution each node's start/end markers carry its own name, and every
    token is attributed to the node that produced it."""

    async def test_end_markers_under_parallel_execution(self):
        """Fails on upstream because `end_node` labels the end marker with the callback's shared
        *current* node: both end markers read `<graphai:q:end:>`, none `<graphai:p:end:>`."""
        _, error, items = await run_with_consumer(_parallel_streamers(False), {})
        assert error is None
        for name in ("p", "q"):
            start = items.index(f"<graphai:{name}:start:>")
            assert items.count(f"<graphai:{name}:start:>") == 1
            assert items.count(f"<graphai:{name}:>") == 1
            assert items.count(f"<graphai:{name}:end:>") == 1
            end = items.index(f"<graphai:{name}:end:>")
            assert start < items.index(f"{name}-1") < items.index(f"{name}-2") < end
        assert items[-1] == "<graphai:END:>"
        assert len(items) == 11

    async def test_tokens_attributed_to_their_node(self):
        """Fails on upstream because the shared callback's current node is whichever parallel
        node started last, so `acall(token, node_name="p")` from `p` raises
        `ValueError: Node name mismatch: q != p`."""
        result, error, items = await run_with_consumer(_parallel_streamers(True), {})
        assert error is None
        assert result == {"p": True, "q": True}
        assert sorted(t for t in items if not t.startswith("<")) == ["p-1", "p-2", "q-1", "q-2"]

    async def test_event_callback_end_events_name_their_node(self):
        """Fails on upstream because `EventCallback.end_node` also uses the shared current node
        name: two `end_node` events for `q`, none for `p`."""
        cb = EventCallback()
        _, error, events = await run_with_consumer(_parallel_streamers(False), {}, cb)
        assert error is None
        ends = sorted(e.token for e in events if e.type == GraphEventType.END_NODE)
        starts = sorted(e.token for e in events if e.type == GraphEventType.START_NODE)
        assert starts == ["p", "q"]
        assert ends == ["p", "q"]
        assert events[-1].type == GraphEventType.END
