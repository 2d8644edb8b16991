"""Token formats (hardening case 16; ``docs/differences.md``, "Formats are checked at
construction"): ``token_format`` and ``special_token_format`` are checked when given or
assigned, with a message naming the argument and the placeholder; ``token_format`` formats str
subclasses like str; ``parse_stream_token()`` takes only a str."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphai import Callback, EventCallback, Graph, node, parse_stream_token
from tests._stream import TIMEOUT, drain


class Chunk(str):
    """A str subclass, as some LLM SDKs hand out."""


class TestTokenFormatOnStrSubclasses:
    """``token_format`` formats a str subclass as it formats a str; tokens without a format
    are passed on as the same objects."""

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
    """``parse_stream_token()`` raises ``TypeError`` for anything but a str; a str subclass
    parses."""

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
    """A ``special_token_format`` without ``{token}`` is rejected by ``Callback()`` (every
    special token would render the same); ``EventCallback`` ignores the format."""

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


class TestBadSpecialTokenFormat:
    """A format with an unknown placeholder, a malformed format or a non-string format fails
    when the Callback is constructed (not later, at `close()` or `aiter()`), naming the
    argument and the placeholder."""

    @pytest.mark.parametrize(
        ("fmt", "placeholder"),
        [
            ("<{foo}>", "{foo}"),
            ("<{identifier}:{token}:{params}:{extra}>", "{extra}"),
            ("<{name}:{token}>", "{name}"),
            ("<{}>", "{}"),
        ],
    )
    def test_unknown_placeholder(self, fmt, placeholder):
        with pytest.raises(ValueError) as ei:
            Callback(special_token_format=fmt)
        msg = str(ei.value)
        assert "special_token_format" in msg
        assert placeholder in msg

    def test_unknown_placeholder_in_token_format(self):
        with pytest.raises(ValueError) as ei:
            Callback(token_format="TOKEN: {tok}")
        msg = str(ei.value)
        assert "token_format" in msg
        assert "{tok}" in msg

    @pytest.mark.parametrize("fmt", ["<{identifier", "<{token}}>x{"])
    def test_malformed_format(self, fmt):
        with pytest.raises(ValueError) as ei:
            Callback(special_token_format=fmt)
        assert "special_token_format" in str(ei.value)

    @pytest.mark.parametrize("fmt", [None, 123])
    def test_non_string_format(self, fmt):
        with pytest.raises(TypeError) as ei:
            Callback(special_token_format=fmt)
        assert "special_token_format" in str(ei.value)

    async def test_valid_formats_still_work(self):
        cb = Callback(special_token_format="{token}", token_format="[{token}]")
        await cb.acall("x")
        await cb.close()
        assert await asyncio.wait_for(drain(cb), TIMEOUT) == ["[x]", "END"]

    def test_event_callback_ignores_formats(self):
        cb = EventCallback(special_token_format="<{foo}>", token_format="{bar}")
        assert cb.identifier == "graphai"
