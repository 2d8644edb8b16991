"""Token formats and marker names: str subclasses are formatted like str, the public parser
rejects non-str input, a special-token format must tell tokens apart, and node names whose
markers would read as other markers are rejected when the graph is built."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphai import Callback, EventCallback, Graph, node, parse_stream_token
from tests._stream import TIMEOUT, drain


class Chunk(str):
    """A str subclass, as some LLM SDKs hand out."""


class TestTokenFormatOnStrSubclasses:
    async def test_formatted_like_str(self) -> None:
        cb = Callback(token_format="[{token}]")
        consumer = asyncio.ensure_future(drain(cb))
        cb(Chunk("a"))
        await cb.acall(Chunk("b"))
        cb("c")
        cb(7)
        await cb.close()
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items == ["[a]", "[b]", "[c]", 7, "<graphai:END:>"]

    async def test_inside_a_graph_with_telemetry_sampling(self) -> None:
        @node(start=True, end=True, stream=True)
        async def speak(callback: Any) -> dict[str, Any]:
            for t in ("x", "y"):
                await callback.acall(Chunk(t))
            return {}

        cb = Callback(token_format="<{token}>")
        consumer = asyncio.ensure_future(drain(cb))
        await asyncio.wait_for(Graph().add_node(speak).execute({}, callback=cb), TIMEOUT)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items[2:4] == ["<x>", "<y>"]

    async def test_unformatted_tokens_are_the_same_objects(self) -> None:
        cb = Callback()
        consumer = asyncio.ensure_future(drain(cb))
        tok = Chunk("same")
        cb(tok)
        await cb.close()
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items[0] is tok


class TestParserInput:
    @pytest.mark.parametrize("value", [None, 3, b"<graphai:END:>", ["x"]])
    def test_non_str_is_a_type_error(self, value: Any) -> None:
        with pytest.raises(TypeError) as info:
            parse_stream_token(value)
        assert str(info.value) == (
            f"parse_stream_token() takes a str from Callback.aiter(), got {type(value).__name__}"
        )

    def test_str_subclass_parses(self) -> None:
        assert parse_stream_token(Chunk("<graphai:END:>")).kind == "END"


class TestSpecialTokenFormatNeedsToken:
    @pytest.mark.parametrize("fmt", ["<{identifier}>", "<{identifier}:{params}>", "{{token}}", "END"])
    def test_rejected_at_construction(self, fmt: str) -> None:
        with pytest.raises(ValueError) as info:
            Callback(special_token_format=fmt)
        assert str(info.value) == (
            f"special_token_format {fmt!r} has no {{token}} placeholder: every special token "
            "(node start, node end, END) would render the same"
        )

    @pytest.mark.parametrize("fmt", ["[{token}]", "{token!r}", "{{{token}}}", "{identifier}|{token}"])
    def test_accepted(self, fmt: str) -> None:
        cb = Callback(special_token_format=fmt)
        assert cb.build_special_token("END") != cb.build_special_token("a:start")

    def test_event_callback_ignores_the_format(self) -> None:
        EventCallback(special_token_format="<{identifier}>")  # accepted and ignored, as upstream


class TestMarkerNames:
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


class TestFormatsAssignedAfterConstruction:
    """Assigning ``token_format``/``special_token_format`` later validates and applies them."""

    async def test_token_format_applies(self) -> None:
        cb = Callback()
        cb.token_format = "<<{token}>>"
        consumer = asyncio.ensure_future(drain(cb))
        await cb.acall("a")
        await cb.close()
        assert await asyncio.wait_for(consumer, TIMEOUT) == ["<<a>>", "<graphai:END:>"]

    async def test_special_token_format_applies_after_a_render(self) -> None:
        cb = Callback()
        assert cb.build_special_token("END") == "<graphai:END:>"
        consumer = asyncio.ensure_future(drain(cb))
        cb.special_token_format = "[{identifier}|{token}]"
        cb.identifier = "app"
        await cb.close()
        assert await asyncio.wait_for(consumer, TIMEOUT) == ["[app|END]"]

    def test_bad_assignments_are_rejected(self) -> None:
        cb = Callback()
        with pytest.raises(ValueError, match="unknown placeholder"):
            cb.token_format = "{nope}"
        with pytest.raises(ValueError, match=r"has no \{token\} placeholder"):
            cb.special_token_format = "<{identifier}>"
        assert cb.token_format == "{token}"
        assert cb.special_token_format == "<{identifier}:{token}:{params}>"
