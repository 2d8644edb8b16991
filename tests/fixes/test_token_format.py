"""``token_format`` (fix 3): applied to string content tokens; special tokens keep their own
format, non-string tokens pass through unchanged."""



from graphai import Callback, Graph, node
from tests._stream import run_with_consumer


class TestFix03TokenFormatApplied:
    """`token_format` is applied to regular string tokens (special tokens keep their own
    format; non-string tokens pass through unchanged)."""

    async def test_token_format(self):
        """Fails on upstream because `token_format` is stored but never applied: the consumer
        reads the raw `Hel`, `lo`."""
        marker = {"kind": "tool-call"}

        @node(start=True, end=True, stream=True)
        async def n(callback):
            await callback.acall("Hel")
            callback("lo")
            await callback.acall(marker)
            return {}

        cb = Callback(token_format="TOKEN: {token}")
        _, error, items = await run_with_consumer(Graph().add_node(n), {}, cb)
        assert error is None
        assert items == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "TOKEN: Hel",
            "TOKEN: lo",
            marker,
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]
