"""Node names and stream markers (hardening case 15): a name whose marker would read as another
marker is rejected by ``add_node()`` when the graph is built; every other name stays
unambiguous for ``parse_stream_token()``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphai import Callback, Graph, node, parse_stream_token
from tests._stream import TIMEOUT, drain


class TestMarkerNames:
    """``add_node()`` rejects ``END`` and names ending in ``:start`` or ``:end``, naming the
    clash; other names, colons and marker delimiters included, parse back to their node."""

    @pytest.mark.parametrize(
        ("name", "clash"),
        [
            ("END", "the stream's END marker"),
            ("x:end", "the end marker of node 'x'"),
            ("x:start", "the start marker of node 'x'"),
            ("a:b:end", "the end marker of node 'a:b'"),
        ],
    )
    def test_reserved_names_rejected_at_build_time(self, name: str, clash: str) -> None:
        async def f() -> dict[str, Any]:
            return {}

        with pytest.raises(ValueError) as info:
            Graph().add_node(node(f, name=name, start=True, end=True))
        assert str(info.value) == (
            f"add_node(): node name {name!r} is reserved: its stream marker would read as "
            f"{clash}; names may not be 'END' or end with ':start' or ':end'"
        )

    @pytest.mark.parametrize("name", ["end", "x:ended", "start:x", "a:b", "<graphai:x>", "END:x"])
    async def test_other_names_stay_unambiguous(self, name: str) -> None:
        async def f(callback: Any) -> dict[str, Any]:
            await callback.acall("t")
            return {}

        cb = Callback()
        consumer = asyncio.ensure_future(drain(cb))
        g = Graph().add_node(node(f, name=name, start=True, end=True, stream=True))
        await asyncio.wait_for(g.execute({}, callback=cb), TIMEOUT)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        kinds = [(p.kind, p.node) for p in map(parse_stream_token, items)]
        assert kinds == [("start", name), ("node", name), ("token", None), ("end", name), ("END", None)]
