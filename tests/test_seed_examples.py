"""
Every code example of the user's ``seed/callbacks.md``, run.

The examples are kept as written; only what they leave undefined is supplied locally:
``process_chunks`` and ``get_llm_response`` (plain generators), the OpenAI client (a fake
``openai`` module whose ``AsyncOpenAI`` streams chunks shaped like OpenAI's), and the graph
wiring around a lone ``stream=True`` node. Where an example cannot run as written, the test
says what it changes and why (the FastAPI example passes its callback to ``execute``).
"""

import asyncio
import sys
import types

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from graphai import Callback, Graph, node

TIMEOUT = 5


async def drain(cb):
    return [t async for t in cb.aiter()]


async def run_with_consumer(graph, inp, cb):
    consumer = asyncio.ensure_future(drain(cb))
    result = await asyncio.wait_for(graph.execute(inp, callback=cb), TIMEOUT)
    items = await asyncio.wait_for(consumer, TIMEOUT)
    return result, items


def wrap_stream_node(stream_node, **inputs):
    """A graph `entry -> stream_node -> done` around a node the document declares without
    `start`/`end` flags; `entry` puts ``inputs`` in the payload."""

    @node(start=True)
    async def entry():
        return dict(inputs)

    @node(end=True)
    async def done():
        return {}

    g = Graph().add_node(entry).add_node(stream_node).add_node(done)
    return g.add_edge(entry, stream_node).add_edge(stream_node, done)


class TestCreatingACallback:
    """ "Creating a Callback": the default and the customised constructor calls work and keep
    their settings."""

    def test_example(self):
        # Create a callback with default settings
        callback = Callback()
        assert (callback.identifier, callback.special_token_format, callback.token_format) == (
            "graphai",
            "<{identifier}:{token}:{params}>",
            "{token}",
        )

        # Create a callback with custom settings
        callback = Callback(
            identifier="custom_id",  # Used for special tokens
            special_token_format="<{identifier}:{token}:{params}>",  # Format for special tokens
            token_format="{token}",  # Format for regular tokens
        )
        assert callback.identifier == "custom_id"

    async def test_custom_identifier_in_markers(self):
        callback = Callback(
            identifier="custom_id",
            special_token_format="<{identifier}:{token}:{params}>",
            token_format="{token}",
        )

        @node(start=True, end=True, stream=True)
        async def n(callback):
            await callback.acall("x")
            return {}

        _, items = await run_with_consumer(Graph().add_node(n), {}, callback)
        assert items == [
            "<custom_id:n:start:>",
            "<custom_id:n:>",
            "x",
            "<custom_id:n:end:>",
            "<custom_id:END:>",
        ]

    async def test_graph_creates_a_callback_when_needed(self):
        """ "The Graph automatically creates a callback when needed"."""

        @node(start=True, end=True, stream=True)
        async def n(callback):
            await callback.acall("x")
            return {"ok": True}

        assert await asyncio.wait_for(Graph().add_node(n).execute({}), TIMEOUT) == {"ok": True}


def process_chunks(data):
    """Supplied for the "Callback In Nodes" example: split the data into words."""
    yield from data.split(" ")


class TestCallbackInNodes:
    """ "Callback In Nodes": a `stream=True` node receives the callback and streams chunks; its
    return value is merged into the result."""

    async def test_example(self):
        @node(stream=True)
        async def streaming_node(input: dict, callback):
            """This node receives a callback parameter because stream=True."""
            # Process input
            for chunk in process_chunks(input["data"]):
                # Stream output chunks
                await callback.acall(chunk)

            # Return final result
            return {"result": "streaming complete"}

        g = wrap_stream_node(streaming_node, input={"data": "alpha beta gamma"})
        result, items = await run_with_consumer(g, {}, Callback())
        assert result == {"input": {"data": "alpha beta gamma"}, "result": "streaming complete"}
        assert items == [
            "<graphai:streaming_node:start:>",
            "<graphai:streaming_node:>",
            "alpha",
            "beta",
            "gamma",
            "<graphai:streaming_node:end:>",
            "<graphai:END:>",
        ]


# --- a fake `openai` package: AsyncOpenAI().chat.completions.create(..., stream=True) --------


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _chunk(content):
    return _Obj(choices=[_Obj(delta=_Obj(content=content), index=0, finish_reason=None)])


class _FakeStream:
    """An async iterator of chat-completion chunks (a role-only first chunk and a final chunk
    without content, as OpenAI sends)."""

    def __init__(self, pieces):
        self._chunks = [_chunk(None), *(_chunk(p) for p in pieces), _chunk(None)]

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self._chunks:
            raise StopAsyncIteration
        await asyncio.sleep(0)
        return self._chunks.pop(0)


def fake_openai_module(pieces, requests):
    class _Completions:
        async def create(self, *, model, messages, stream=False):
            requests.append({"model": model, "messages": messages, "stream": stream})
            assert stream is True
            return _FakeStream(pieces)

    class AsyncOpenAI:
        def __init__(self):
            self.chat = _Obj(completions=_Completions())

    mod = types.ModuleType("openai")
    mod.AsyncOpenAI = AsyncOpenAI
    return mod


class TestStreamingFromLLMs:
    """ "Streaming from LLMs": the node streams each non-empty delta and returns the whole
    response (OpenAI replaced by a fake module with the same call shape)."""

    async def test_example(self, monkeypatch):
        requests = []
        monkeypatch.setitem(
            sys.modules, "openai", fake_openai_module(["Para", "llel", " worlds"], requests)
        )

        @node(stream=True)
        async def llm_node(input: dict, callback):
            """Stream output from an LLM."""
            from openai import AsyncOpenAI

            client = AsyncOpenAI()

            # Start streaming response
            stream = await client.chat.completions.create(
                model="gpt-4",
                messages=[
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": input["query"]},
                ],
                stream=True,
            )

            response_text = ""

            # Stream chunks through the callback
            async for chunk in stream:
                if chunk.choices[0].delta.content:
                    content = chunk.choices[0].delta.content
                    response_text += content
                    await callback.acall(content)

            # Return the complete response
            return {"response": response_text}

        g = wrap_stream_node(llm_node, input={"query": "What is a graph?"})
        result, items = await run_with_consumer(g, {}, Callback())
        assert result == {"input": {"query": "What is a graph?"}, "response": "Parallel worlds"}
        assert items == [
            "<graphai:llm_node:start:>",
            "<graphai:llm_node:>",
            "Para",
            "llel",
            " worlds",
            "<graphai:llm_node:end:>",
            "<graphai:END:>",
        ]
        assert requests == [
            {
                "model": "gpt-4",
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is a graph?"},
                ],
                "stream": True,
            }
        ]


class TestCallbackMethods:
    """ "Callback Methods": sync and async token calls, node start/end markers, close."""

    async def test_example(self):
        callback = Callback()

        # Synchronous callback (use in sync contexts)
        callback(token="chunk of text")

        # Async callback (preferred)
        await callback.acall(token="chunk of text")

        # Mark the start of a node
        await callback.start_node(node_name="my_node")

        # Mark the end of a node
        await callback.end_node(node_name="my_node")

        # Close the callback stream
        await callback.close()

        assert await asyncio.wait_for(drain(callback), TIMEOUT) == [
            "chunk of text",
            "chunk of text",
            "<graphai:my_node:start:>",
            "<graphai:my_node:>",
            "<graphai:my_node:end:>",
            "<graphai:END:>",
        ]


class TestConsumingACallbackStream:
    """ "Consuming a Callback Stream": `consume_stream` prints every item and returns at END."""

    async def test_example(self, capsys):
        async def consume_stream(callback):
            async for token in callback.aiter():
                # Process each token
                print(token, end="", flush=True)

        @node(start=True, end=True, stream=True)
        async def talker(callback):
            for t in ("Hi", " there"):
                await callback.acall(t)
                await asyncio.sleep(0)
            return {}

        callback = Callback()
        consumer = asyncio.ensure_future(consume_stream(callback))
        await asyncio.wait_for(Graph().add_node(talker).execute({}, callback=callback), TIMEOUT)
        await asyncio.wait_for(consumer, TIMEOUT)
        assert capsys.readouterr().out == (
            "<graphai:talker:start:><graphai:talker:>Hi there<graphai:talker:end:><graphai:END:>"
        )


class TestSpecialTokens:
    """ "Special Tokens": the four marker kinds appear in the documented order. The document
    writes them without the trailing `:` of the empty `{params}` slot; the real tokens (the
    ones ``tests/compat/`` pins) carry it."""

    DOCUMENTED = (
        "<graphai:node_name:start>",
        "<graphai:node_name>",
        "<graphai:node_name:end>",
        "<graphai:END>",
    )

    async def test_markers_match_the_document_up_to_the_params_slot(self):
        @node(start=True, end=True, stream=True)
        async def node_name():
            return {}

        _, items = await run_with_consumer(Graph().add_node(node_name), {}, Callback())
        assert items == [
            "<graphai:node_name:start:>",
            "<graphai:node_name:>",
            "<graphai:node_name:end:>",
            "<graphai:END:>",
        ]
        assert tuple(t[:-2] + ">" for t in items) == self.DOCUMENTED


def get_llm_response(query):
    """Supplied for the web server example: a canned, chunked answer."""
    yield from ("Answer", " to: ", query)


def make_app():
    """The document's FastAPI example, one change: the endpoint passes its callback to
    ``graph.execute`` (as written, ``execute`` makes its own callback and the response stream
    would never receive a token). The node's ``input`` parameter receives the payload's
    ``input`` key, so the request's query is sent under it."""
    app = FastAPI()
    tasks = set()

    @node(start=True, stream=True)
    async def llm_stream(input: dict, callback):
        # Streaming LLM implementation...
        for chunk in get_llm_response(input["query"]):
            await callback.acall(chunk)
        return {"status": "complete"}

    @node(end=True)
    async def final_node(input: dict):
        return {"status": "success"}

    # Create graph
    graph = Graph()
    graph.add_node(llm_stream())
    graph.add_node(final_node())
    graph.add_edge(llm_stream, final_node)

    @app.post("/stream")
    async def stream_endpoint(request: Request):
        data = await request.json()

        # Get a callback from the graph
        callback = graph.get_callback()

        # Start graph execution in background
        task = asyncio.create_task(graph.execute({"input": {"query": data["query"]}}, callback))
        tasks.add(task)

        # Return streaming response
        return StreamingResponse(callback.aiter(), media_type="text/event-stream")

    return app, tasks


class TestWebServerWithStreaming:
    """ "Example: Web Server with Streaming": a FastAPI endpoint streams the graph's tokens as
    the response body, ending with END; every request gets its own callback."""

    async def test_example(self):
        app, tasks = make_app()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def ask(q):
                async with client.stream("POST", "/stream", json={"query": q}) as resp:
                    assert resp.status_code == 200
                    assert resp.headers["content-type"].startswith("text/event-stream")
                    return "".join([chunk async for chunk in resp.aiter_text()])

            body = await asyncio.wait_for(ask("graphs?"), TIMEOUT)
            assert body == (
                "<graphai:llm_stream:start:><graphai:llm_stream:>Answer to: graphs?"
                "<graphai:llm_stream:end:><graphai:END:>"
            )
            bodies = await asyncio.wait_for(asyncio.gather(ask("one"), ask("two")), TIMEOUT)
            assert bodies == [
                "<graphai:llm_stream:start:><graphai:llm_stream:>Answer to: one"
                "<graphai:llm_stream:end:><graphai:END:>",
                "<graphai:llm_stream:start:><graphai:llm_stream:>Answer to: two"
                "<graphai:llm_stream:end:><graphai:END:>",
            ]
        results = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        assert sorted(r["input"]["query"] for r in results) == ["graphs?", "one", "two"]
        assert all(r["status"] == "success" for r in results)


class TestCallbackConfiguration:
    """ "Callback Configuration": identifier, special-token format and token format all shape
    the stream."""

    async def test_example(self):
        callback = Callback(
            # Custom identifier (default is "graphai")
            identifier="myapp",
            # Custom format for special tokens
            special_token_format="<[{identifier}|{token}|{params}]>",
            # Custom format for regular tokens
            token_format="TOKEN: {token}",
        )

        @node(start=True, end=True, stream=True)
        async def writer(callback):
            await callback.acall("hello")
            callback("world")
            return {}

        _, items = await run_with_consumer(Graph().add_node(writer), {}, callback)
        assert items == [
            "<[myapp|writer:start|]>",
            "<[myapp|writer|]>",
            "TOKEN: hello",
            "TOKEN: world",
            "<[myapp|writer:end|]>",
            "<[myapp|END|]>",
        ]


class TestAdvancedCustomProcessing:
    """ "Advanced: Custom Processing of Special Tokens": `process_stream` collects the regular
    tokens of a graph run and returns once the stream ends."""

    @staticmethod
    async def process_stream(callback):
        current_node = None
        buffer = ""

        async for token in callback.aiter():
            # Check if it's a special token
            if token.startswith("<graphai:") and token.endswith(">"):
                # Handle node start
                if ":start" in token:
                    node_name = token.split(":")[1].split(":start")[0]
                    current_node = node_name
                    # Handle node start event

                # Handle node end
                elif ":end" in token:
                    # Handle node end event
                    current_node = None  # noqa: F841 - as written in the document

                # Handle stream end
                elif token == "<graphai:END>":
                    # Handle end of stream
                    break

            # Regular token
            else:
                # Process regular token
                buffer += token
                # Maybe do something with buffer

        return buffer

    async def test_example(self):
        @node(start=True, stream=True)
        async def planner(callback):
            for t in ("Plan", ": ", "search. "):
                await callback.acall(t)
                await asyncio.sleep(0)
            return {}

        @node
        async def silent():
            return {}

        @node(end=True, stream=True)
        async def writer(callback):
            for t in ("Result", ": ", "done."):
                await callback.acall(t)
            return {"final": True}

        g = Graph().add_node(planner).add_node(silent).add_node(writer)
        g.add_edge(planner, silent).add_edge(silent, writer)
        callback = Callback()
        processor = asyncio.ensure_future(self.process_stream(callback))
        result = await asyncio.wait_for(g.execute({}, callback=callback), TIMEOUT)
        assert result == {"final": True}
        assert await asyncio.wait_for(processor, TIMEOUT) == "Plan: search. Result: done."


@pytest.fixture(autouse=True)
def _no_real_openai(monkeypatch):
    """No example may reach a real OpenAI client: ``openai`` resolves to the fake or not at
    all."""
    if "openai" not in sys.modules:
        monkeypatch.setitem(sys.modules, "openai", None)
