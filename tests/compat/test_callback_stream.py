"""
The token stream of a graph run in graphai-lib 0.0.12 (section 7 checks 31-33, 37, 38, section
3.1): the exact marker sequence, stream nodes only, END last, duck-typed callbacks, and the
special-token formats. The quirks of checks 33 (``token_format`` ignored) and 38 (no END without
a stream node) are asserted as fixed (``docs/differences.md`` fixes 1, 3); ``tests/fixes/`` proves the
difference.
"""

import asyncio

import pytest

from graphai import Callback, Graph, StreamClosedError, node
from tests._stream import TIMEOUT, drain
from tests.compat._support import execute_streamed


class TestGraphStream:
    """A graph run streams exact markers for stream nodes only, END last (checks 31, 32, 37, 38)."""

    async def test_exact_stream_for_two_node_graph(self):
        @node(start=True)
        async def first(input: dict):
            return {"output": input["text"].upper()}

        @node(end=True, stream=True)
        async def second(output: str, callback):
            for t in ["Hel", "lo", " world"]:
                await callback.acall(t)
            return {"output": output}

        g = Graph().add_node(first).add_node(second).add_edge(first, second)
        result, items = await execute_streamed(g, {"input": {"text": "hi!"}})
        assert result == {"input": {"text": "hi!"}, "output": "HI!"}
        assert items == [
            "<graphai:second:start:>",
            "<graphai:second:>",
            "Hel",
            "lo",
            " world",
            "<graphai:second:end:>",
            "<graphai:END:>",
        ]

    async def test_two_streaming_nodes_async_and_sync_call(self):
        @node(start=True, stream=True)
        async def s1(callback):
            await callback.acall("a")
            return {}

        @node(end=True, stream=True)
        async def s2(callback):
            callback("b")
            return {}

        g = Graph().add_node(s1).add_node(s2).add_edge(s1, s2)
        _, items = await execute_streamed(g, {})
        assert items == [
            "<graphai:s1:start:>",
            "<graphai:s1:>",
            "a",
            "<graphai:s1:end:>",
            "<graphai:s2:start:>",
            "<graphai:s2:>",
            "b",
            "<graphai:s2:end:>",
            "<graphai:END:>",
        ]

    async def test_stream_node_without_callback_parameter_emits_markers(self):
        @node(start=True, end=True, stream=True)
        async def quiet():
            return {"q": 1}

        g = Graph().add_node(quiet)
        result, items = await execute_streamed(g, {})
        assert result == {"q": 1}
        assert items == [
            "<graphai:quiet:start:>",
            "<graphai:quiet:>",
            "<graphai:quiet:end:>",
            "<graphai:END:>",
        ]

    async def test_tokens_of_any_type_pass_through(self):
        payload = {"tool": "search"}

        @node(start=True, end=True, stream=True)
        async def s(callback):
            await callback.acall(payload)
            await callback.acall(42)
            return {}

        _, items = await execute_streamed(Graph().add_node(s), {})
        assert items[2] is payload
        assert items[3] == 42

    async def test_graph_without_streaming_node_streams_only_end(self):
        """Check 38, fixed (docs/differences.md fix 1)."""

        @node(start=True, end=True)
        async def plain():
            return {"p": 1}

        result, items = await execute_streamed(Graph().add_node(plain), {})
        assert result == {"p": 1}
        assert items == ["<graphai:END:>"]

    async def test_reusing_a_closed_callback(self):
        @node(start=True, end=True, stream=True)
        async def s(callback):
            await callback.acall("x")
            return {}

        g = Graph().add_node(s)
        cb = Callback()
        await execute_streamed(g, {}, cb)
        with pytest.raises(RuntimeError) as ei:
            await asyncio.wait_for(g.execute({}, callback=cb), TIMEOUT)
        assert isinstance(ei.value, StreamClosedError)
        assert str(ei.value) == "Cannot start node on a closed stream"

    async def test_default_callback_is_used_without_one(self):
        @node(start=True, end=True, stream=True)
        async def s(callback):
            await callback.acall("x")
            return {"done": True}

        g = Graph().add_node(s)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {"done": True}

    async def test_duck_typed_callback(self):
        calls = []

        class Recorder:
            async def start_node(self, node_name, active=True):
                calls.append(("start_node", node_name))

            async def end_node(self, node_name):
                calls.append(("end_node", node_name))

            async def acall(self, token, node_name=None):
                calls.append(("acall", token))

            async def close(self):
                calls.append(("close",))

        @node(start=True)
        async def plain():
            return {}

        @node(end=True, stream=True)
        async def s(callback):
            await callback.acall("tok")
            return {"ok": 1}

        g = Graph().add_node(plain).add_node(s).add_edge(plain, s)
        result = await asyncio.wait_for(g.execute({}, callback=Recorder()), TIMEOUT)
        assert result == {"ok": 1}
        assert calls == [("start_node", "s"), ("acall", "tok"), ("end_node", "s"), ("close",)]


class TestCallbackFormats:
    """Special-token formats: identifier, `{token}`, `{params}`; all optional (check 33)."""

    async def _markers(self, cb):
        @node(start=True, end=True, stream=True)
        async def n(callback):
            await callback.acall("tok")
            return {}

        _, items = await execute_streamed(Graph().add_node(n), {}, cb)
        return items

    async def test_custom_identifier_and_brackets(self):
        cb = Callback(identifier="demo", special_token_format="[{identifier}:{token}:{params}]")
        assert await self._markers(cb) == [
            "[demo:n:start:]",
            "[demo:n:]",
            "tok",
            "[demo:n:end:]",
            "[demo:END:]",
        ]

    async def test_format_without_identifier_and_params(self):
        cb = Callback(special_token_format="<<{token}>>")
        assert await self._markers(cb) == ["<<n:start>>", "<<n>>", "tok", "<<n:end>>", "<<END>>"]

    async def test_pipe_format(self):
        cb = Callback(identifier="demo", special_token_format="[{identifier}|{token}|{params}]")
        assert await self._markers(cb) == [
            "[demo|n:start|]",
            "[demo|n|]",
            "tok",
            "[demo|n:end|]",
            "[demo|END|]",
        ]

    async def test_default_token_format_leaves_tokens_raw(self):
        assert await self._markers(Callback()) == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "tok",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]

    async def test_token_format_is_applied(self):
        """Check 33's `token_format` quirk, fixed (docs/differences.md fix 3)."""
        cb = Callback(token_format="<<{token}>>")
        assert await self._markers(cb) == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "<<tok>>",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]

    async def test_params_render_as_key_value_list(self):
        cb = Callback()
        token = await cb._build_special_token("test", {"key": "value", "number": 42})
        assert token == "<graphai:test:key=value,number=42>"
        assert await cb._build_special_token("END") == "<graphai:END:>"

    @pytest.mark.parametrize("identifier", ["", None])
    async def test_empty_identifier_renders_empty(self, identifier):
        cb = Callback(identifier=identifier)
        await cb.close()
        assert await asyncio.wait_for(drain(cb), TIMEOUT) == ["<:END:>"]

    def test_constructor_stores_its_arguments(self):
        cb = Callback(identifier="x", special_token_format="<{token}>", token_format="T{token}")
        assert (cb.identifier, cb.special_token_format, cb.token_format) == (
            "x",
            "<{token}>",
            "T{token}",
        )
        d = Callback()
        assert (d.identifier, d.special_token_format, d.token_format) == (
            "graphai",
            "<{identifier}:{token}:{params}>",
            "{token}",
        )
