"""
The graph builder and its run loop.

Compatible with graphai-lib 0.0.12 (see ``spec/ENGINE.md``), with its bugs fixed on purpose:
the stream always ends with END, markers carry their own node, the caller's input is never
mutated, joins count for ``compile()`` and run inside branch pipelines, successor lookup is
constant time, and more (README, "Differences from graphai-lib").
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from graphlib import CycleError, TopologicalSorter
from time import perf_counter
from typing import Any, Protocol

from graphai import _hooks
from graphai._log import log_event
from graphai.callback import _CURRENT_VIEW, _ENGINE_NODE, Callback, EventCallback, _StreamBase
from graphai.errors import (
    BranchError,
    ConsumerGoneError,
    GraphCompileError,
    GraphError,
    MaxStepsError,
    NodeNotFoundError,
    NoOutgoingEdgeError,
)

__all__ = [
    "BranchCondition",
    "BranchEdge",
    "BranchError",
    "Edge",
    "Graph",
    "GraphCompileError",
    "GraphError",
    "JoinEdge",
    "MaxStepsError",
    "NodeProtocol",
]



class NodeProtocol(Protocol):
    """The interface of a decorated node."""

    name: str
    is_start: bool
    is_end: bool
    is_router: bool
    stream: bool

    async def invoke(
        self,
        input: dict[str, Any],
        callback: Any = None,
        state: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...


# A branch condition receives the source node's output dict and the graph state and returns
# (or resolves to) a truthy value to run the branch.
BranchCondition = Callable[[dict[str, Any], dict[str, Any]], "bool | Awaitable[bool]"]


class Edge:
    def __init__(self, source: Any, destination: Any) -> None:
        self.source = source
        self.destination = destination


class JoinEdge:
    def __init__(self, sources: list[Any], destination: Any) -> None:
        self.sources = sources
        self.destination = destination


class BranchEdge:
    """Side edge from ``source`` to the first node of an isolated pipeline
    (see :meth:`Graph.add_branch`)."""

    def __init__(
        self,
        source: Any,
        destination: Any,
        *,
        condition: BranchCondition | None = None,
        wait: bool = True,
    ) -> None:
        self.source = source
        self.destination = destination
        self.condition = condition
        self.wait = wait


def _is_node(obj: Any) -> bool:
    return (
        not isinstance(obj, str)
        and isinstance(getattr(obj, "name", None), str)
        and callable(getattr(obj, "invoke", None))
    )


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit, ConsumerGoneError)):
        return _hooks.CANCELLED
    return _hooks.ERROR


class _PathEnd:
    """Where a parallel path ended: its last node observer and the time it finished."""

    __slots__ = ("obs", "t")

    def __init__(self) -> None:
        self.obs: _hooks.NodeObserver | None = None
        self.t = 0.0


# callback classes whose node markers the engine may emit itself (per-node views)
_NATIVE_METHODS = ("start_node", "end_node", "acall", "__call__", "close", "aiter")
_native_cache: dict[type, bool] = {}


def _is_native(cb: Any) -> bool:
    cls = type(cb)
    ok = _native_cache.get(cls)
    if ok is None:
        ok = False
        for base in (Callback, EventCallback):
            if issubclass(cls, base):
                ok = all(getattr(cls, m) is getattr(base, m) for m in _NATIVE_METHODS)
        _native_cache[cls] = ok
    return ok


class _Run:
    """Per-execute() state."""

    __slots__ = ("branch_errors", "callback", "detached", "fatal", "native", "obs", "steps")

    def __init__(self, callback: Any, obs: _hooks.RunObserver) -> None:
        self.callback = callback
        self.native = _is_native(callback)
        self.obs = obs
        self.detached: set[asyncio.Task[Any]] = set()
        self.steps = 0
        # this run's branch failures; ``Graph.branch_errors`` shows the list of the run that
        # the reading task awaited (concurrent runs of one Graph never mix their errors)
        self.branch_errors: list[BranchError] = []
        # the first BaseException (not an Exception, not a cancellation) a detached branch
        # ended with: execute() re-raises it once the other branches are done
        self.fatal: BaseException | None = None

    def detached_done(self, task: asyncio.Task[Any]) -> None:
        self.detached.discard(task)
        if not task.cancelled():
            exc = task.exception()  # retrieved: no "exception was never retrieved" log
            if exc is not None and not isinstance(exc, Exception) and self.fatal is None:
                self.fatal = exc


# The branch-error list of each Graph's run, per task context: ``await graph.execute()`` runs
# in the caller's context, so a caller that reads ``graph.branch_errors`` after its own run
# sees that run's errors even while other tasks run the same Graph.
_RUN_ERRORS: contextvars.ContextVar[dict[Graph, list[BranchError]] | None] = (
    contextvars.ContextVar("graphai_run_branch_errors", default=None)
)

# Waited branch pipelines nested deeper than this run in a task of their own (a fresh stack):
# a cycle through waited branches ends at ``max_steps``, never with a RecursionError.
_INLINE_PIPELINE_DEPTH = 16


async def _gather_all(tasks: set[asyncio.Task[Any]]) -> None:
    """Wait until ``tasks`` (a live set: tasks may add more) is empty; then re-raise the first
    ``BaseException`` that is neither an ``Exception`` nor a cancellation (pipelines record
    their ``Exception`` s as branch errors), so it is never swallowed."""
    fatal: BaseException | None = None
    while tasks:
        for res in await asyncio.gather(*list(tasks), return_exceptions=True):
            if (
                fatal is None
                and isinstance(res, BaseException)
                and not isinstance(res, (Exception, asyncio.CancelledError))
            ):
                fatal = res
    if fatal is not None:
        raise fatal


class Graph:
    """
    A graph of async nodes.

    Args:
        max_steps: maximum number of transitions in one run (``MaxStepsError`` beyond).
        initial_state: the graph state (shared by runs; nodes read it via a ``state`` param).
        name: the graph's name in telemetry (spans, metrics, logs).

    .. versionchanged:: 0.1.0
       ``name`` added.
    """

    def __init__(
        self,
        max_steps: int = 10,
        initial_state: dict[str, Any] | None = None,
        *,
        name: str = "graph",
    ) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int):
            raise TypeError(f"Graph(): max_steps must be an int, got {type(max_steps).__name__}")
        if initial_state is not None and not isinstance(initial_state, dict):
            raise TypeError(
                f"Graph(): initial_state must be a dict or None, got {type(initial_state).__name__}"
            )
        if not isinstance(name, str) or not name:
            raise TypeError(f"Graph(): name must be a non-empty str, got {name!r}")
        self.name = name
        self.nodes: dict[str, Any] = {}
        self.edges: list[Any] = []
        self.start_node: Any = None
        self.end_nodes: list[Any] = []
        self.join_nodes: set[Any] = set()
        self.Callback: type[Any] = Callback
        self.max_steps = max_steps
        self.state: dict[str, Any] = initial_state or {}
        self._branch_errors: list[BranchError] = []  # the last started run's (upstream's view)
        self._detached_tasks: set[asyncio.Task[Any]] = set()
        # adjacency, maintained by the builder: constant-time lookups at run time
        self._succ: dict[str, list[Any]] = {}
        self._branches: dict[str, list[BranchEdge]] = {}
        self._join_of: dict[str, JoinEdge] = {}  # join source name -> first JoinEdge listing it
        self._end_names: set[str] = set()  # is_end nodes and set_end_node()

    # -- state -----------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The live graph state (not a copy)."""
        return self.state

    def set_state(self, state: dict[str, Any]) -> Graph:
        """Replace the graph state."""
        if not isinstance(state, dict):
            raise TypeError(f"set_state(): state must be a dict, got {type(state).__name__}")
        self.state = state
        return self

    def update_state(self, values: dict[str, Any]) -> Graph:
        """``dict.update`` the graph state."""
        if not isinstance(values, dict):
            raise TypeError(f"update_state(): values must be a dict, got {type(values).__name__}")
        self.state.update(values)
        return self

    def reset_state(self) -> Graph:
        """Reset the graph state to a new empty dict."""
        self.state = {}
        return self

    # -- building --------------------------------------------------------------------------
    def add_node(self, node: Any) -> Graph:
        """Add a node (the decorated class or an instance of it)."""
        if not _is_node(node):
            raise TypeError(
                "add_node(): expected a node (a function decorated with @node or @router), "
                f"got {type(node).__name__} {node!r}"
            )
        if node.name in self.nodes:
            raise GraphError(f"Node with name '{node.name}' already exists.")
        name = node.name
        if name == "END" or name.endswith((":start", ":end")):
            # its id marker <graphai:NAME:> would read as another marker (special tokens)
            clash = (
                "the stream's END marker"
                if name == "END"
                else f"the {name.rsplit(':', 1)[1]} marker of node {name.rsplit(':', 1)[0]!r}"
            )
            raise ValueError(
                f"add_node(): node name {name!r} is reserved: its stream marker would read as "
                f"{clash}; names may not be 'END' or end with ':start' or ':end'"
            )
        if node.is_start and self.start_node is not None:
            raise GraphError(
                "Multiple start nodes are not allowed. Start node "
                f"'{self.start_node.name}' already exists, so new start "
                f"node '{node.name}' can not be added to the graph."
            )
        self.nodes[node.name] = node
        if node.is_start:
            self.start_node = node
        if node.is_end:
            self.end_nodes.append(node)
            self._end_names.add(node.name)
        return self

    def _get_node(self, candidate: Any, arg: str = "node") -> Any:
        if isinstance(candidate, str):
            found = self.nodes.get(candidate)
        elif _is_node(candidate):
            found = self.nodes.get(candidate.name)
        else:
            raise TypeError(
                f"{arg} must be a node or a node name (str), got {type(candidate).__name__} "
                f"{candidate!r}"
            )
        if found is None:
            shown = candidate if isinstance(candidate, str) else candidate.name
            raise NodeNotFoundError(f"Node with name '{shown}' not found.")
        return found

    def _known_choice(self, choice: Any) -> Any:
        """A router's choice for its span, or ``None`` unless every name is a node of this
        graph (unknown choice text is the router's raw output: content, never telemetry)."""
        names = choice if isinstance(choice, (list, tuple)) else [choice]
        nodes = self.nodes
        return choice if all(isinstance(n, str) and n in nodes for n in names) else None

    def _node_by_name(self, name: Any) -> Any:
        found = self.nodes.get(name) if isinstance(name, str) else None
        if found is None:
            raise NodeNotFoundError(f"Node with name {name} not found.")
        return found

    def add_edge(self, source: Any, destination: Any) -> Graph:
        """Add an edge between two nodes already in the graph (objects or names)."""
        src = self._get_node(source, "add_edge(): source")
        dst = self._get_node(destination, "add_edge(): destination")
        self.edges.append(Edge(src, dst))
        self._succ.setdefault(src.name, []).append(dst)
        return self

    def add_branch(
        self,
        source: Any,
        destination: Any,
        *,
        condition: BranchCondition | None = None,
        wait: bool = True,
    ) -> Graph:
        """
        Add a branch edge: a side pipeline starting at ``destination`` once ``source`` ran.

        The pipeline follows regular edges (forks and joins included) and stops at an end
        node, a node without successors, or a node whose output has ``success: False``. Its
        results never enter the main payload; its exceptions are recorded in
        ``branch_errors`` instead of raised.

        Args:
            condition: optional ``(output, state) -> bool`` (may be async); falsy skips.
            wait: ``True``: the main path waits for the pipeline; ``False``: it runs
                detached, and ``execute()`` waits for it before returning.
        """
        if condition is not None and not callable(condition):
            raise TypeError(f"add_branch(): condition must be callable, got {type(condition).__name__}")
        src = self._get_node(source, "add_branch(): source")
        dst = self._get_node(destination, "add_branch(): destination")
        edge = BranchEdge(src, dst, condition=condition, wait=wait)
        self.edges.append(edge)
        self._branches.setdefault(src.name, []).append(edge)
        return self

    def add_router(self, sources: list[Any], router: Any, destinations: list[Any]) -> Graph:
        """Add a router between ``sources`` and ``destinations``; it picks via ``choice``
        (one name) or ``choices`` (several, run in parallel)."""
        if not getattr(router, "is_router", False):
            raise TypeError("A router object must be passed to the router parameter.")
        # resolve everything first: a bad argument leaves the graph unchanged
        r = self._get_node(router, "add_router(): router")
        srcs = [self._get_node(x, "add_router(): source") for x in sources]
        dsts = [self._get_node(x, "add_router(): destination") for x in destinations]
        for x in srcs:
            self.add_edge(x, r)
        for x in dsts:
            self.add_edge(r, x)
        return self

    def add_parallel(self, source: Any, destinations: list[Any]) -> Graph:
        """Add an edge from ``source`` to each destination: they run concurrently."""
        src = self._get_node(source, "add_parallel(): source")
        dsts = [self._get_node(d, "add_parallel(): destination") for d in destinations]
        for d in dsts:
            self.add_edge(src, d)
        return self

    def add_join(self, sources: list[Any], destination: Any) -> Graph:
        """Join parallel paths: when they all reach their source, ``destination`` runs once
        with the merged payload."""
        if isinstance(sources, (str, bytes)) or not isinstance(sources, Iterable):
            raise TypeError(f"add_join(): sources must be a list of nodes, got {type(sources).__name__}")
        srcs = [self._get_node(s, "add_join(): source") for s in sources]
        dst = self._get_node(destination, "add_join(): destination")
        edge = JoinEdge(srcs, dst)
        self.edges.append(edge)
        self.join_nodes.update(srcs)
        for s in srcs:
            self._join_of.setdefault(s.name, edge)
        return self

    def set_start_node(self, node: Any) -> Graph:
        """Make ``node`` the start node."""
        if not _is_node(node):
            raise TypeError(f"set_start_node(): expected a node, got {type(node).__name__}")
        self.start_node = node
        return self

    def set_end_node(self, node: Any) -> Graph:
        """Mark ``node`` as an end node (counts for ``compile()`` and stops runs).

        .. versionchanged:: 0.1.0
           Honoured by ``compile()`` and ``execute()`` (upstream stored it only).
        """
        if not _is_node(node):
            raise TypeError(f"set_end_node(): expected a node, got {type(node).__name__}")
        self.end_node = node
        self._end_names.add(node.name)
        return self

    def _is_end(self, node: Any) -> bool:
        return bool(node.is_end) or node.name in self._end_names

    def compile(self, *, strict: bool = False) -> Graph:
        """
        Validate the graph: nodes present, a start node, an end node, every node reachable
        from the start (regular, branch and join edges), and with ``strict=True`` no cycles.
        Raises :class:`GraphCompileError`; returns ``self``.
        """
        if not self.nodes:
            raise GraphCompileError("No nodes have been added to the graph")
        start = self.start_node
        if start is None:
            starts = [n for n, nd in self.nodes.items() if nd.is_start]
            start = self.nodes[starts[0]] if starts else None
        if start is None:
            raise GraphCompileError("No start node defined")
        if not any(n.is_end for n in self.nodes.values()) and not self._end_names:
            raise GraphCompileError("No end node defined")
        adj: dict[str, set[str]] = {name: set() for name in self.nodes}
        for e in self.edges:
            if isinstance(e, JoinEdge):
                for s in e.sources:
                    adj[s.name].add(e.destination.name)
            else:
                if e.destination.name not in self.nodes:
                    raise GraphCompileError(
                        f"Edge from {e.source.name} references unknown node(s): ['{e.destination.name}']"
                    )
                adj[e.source.name].add(e.destination.name)
        seen: set[str] = set()
        stack = [start.name]
        while stack:
            cur = stack.pop()
            if cur in seen:
                continue
            seen.add(cur)
            stack.extend(adj.get(cur, ()))
        unreachable = sorted(set(self.nodes) - seen)
        if unreachable:
            raise GraphCompileError(f"Unreachable nodes: {unreachable}")
        if strict:
            preds: dict[str, set[str]] = {n: set() for n in self.nodes}
            for s, ds in adj.items():
                for d in ds:
                    preds[d].add(s)
            try:
                list(TopologicalSorter(preds).static_order())
            except CycleError as exc:
                raise GraphCompileError("cycle detected in graph (strict mode)") from exc
        return self

    # -- callbacks -------------------------------------------------------------------------
    def get_callback(self) -> Any:
        """A new instance of the callback class (``Callback`` unless ``set_callback``)."""
        return self.Callback()

    def set_callback(self, callback_class: type[Any]) -> Graph:
        """Set the callback class used by ``get_callback`` and by ``execute`` without one."""
        if not isinstance(callback_class, type):
            raise TypeError(
                f"set_callback(): expected a callback class, got {type(callback_class).__name__}"
            )
        self.Callback = callback_class
        return self

    @property
    def branch_errors(self) -> list[BranchError]:
        """The branch failures of this task's latest run of this graph (of the latest run
        started anywhere, when this task ran none). Concurrent runs each see their own."""
        mine = _RUN_ERRORS.get()
        if mine is not None:
            errs = mine.get(self)
            if errs is not None:
                return errs
        return self._branch_errors

    @branch_errors.setter
    def branch_errors(self, value: list[BranchError]) -> None:
        self._branch_errors = value
        mine = _RUN_ERRORS.get()
        if mine is not None and self in mine:
            _RUN_ERRORS.set({k: v for k, v in mine.items() if k is not self})

    # -- running ---------------------------------------------------------------------------
    async def execute(self, input: dict[str, Any], callback: Any = None) -> dict[str, Any]:
        """
        Run the graph on ``input`` (never mutated) and return the merged payload.

        The callback's stream always ends with END, also when a node raises (the exception
        then propagates) or the run is cancelled. Without a ``callback``, one is made with
        ``get_callback()``; nobody can read it, so its tokens are counted but not buffered.
        """
        if callback is None:
            callback = self.get_callback()
            if type(callback) in (Callback, EventCallback) and (
                type(self).get_callback is Graph.get_callback
            ):
                callback._chan.buf = deque(maxlen=0)  # nobody can read it: keep nothing
        if not isinstance(input, dict):
            await self._close(callback)
            raise TypeError(f"execute(): input must be a dict, got {type(input).__name__}")
        if self.start_node is None:
            await self._close(callback)
            raise AssertionError("Graph must be compiled before execution")
        instr = _hooks.get_instrumentation()
        obs = instr.run(self.name, uuid.uuid4().hex, input) if instr.enabled else _hooks.NOOP_RUN
        run = _Run(callback, obs)
        self._branch_errors = run.branch_errors
        mine = _RUN_ERRORS.get()
        _RUN_ERRORS.set({**(mine or {}), self: run.branch_errors})
        if run.native:
            obs.channel(callback._chan)
        try:
            result = await self._run_path(self.start_node, dict(input), run, 0, False, False, None)
            await self._wait_detached(run)
            if run.native and callback._chan.maxsize is not None:
                await callback._chan.wait_space()  # END respects the bound too
        except BaseException as exc:
            try:
                await self._cancel_detached(run)
            finally:  # also when cancelled again while cancelling the detached branches
                obs.end(_outcome(exc), exc, run.steps)
                await self._close(callback)
            raise
        try:
            await self._close(callback)
        except BaseException as exc:  # close() cancelled (or raising a BaseException)
            obs.end(_outcome(exc), exc, run.steps)
            raise
        result.pop("upstream", None)
        obs.end(_hooks.OK, None, run.steps, result)
        return result

    async def execute_many(
        self, inputs: Iterable[dict[str, Any]], *, concurrency: int = 5
    ) -> list[Any]:
        """Run ``execute`` on each input, at most ``concurrency`` at once; results in input
        order; the first exception propagates (the other runs are cancelled). Afterwards
        ``branch_errors`` holds the branch errors of these runs, in input order."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"execute_many(): concurrency must be a positive int, got {concurrency!r}")
        sem = asyncio.Semaphore(concurrency)

        per_run: list[list[BranchError]] = []

        async def one(inp: dict[str, Any]) -> Any:
            async with sem:
                mine: list[BranchError] = []
                per_run.append(mine)
                result = await self.execute(input=inp)
                mine.extend(self.branch_errors)  # this task's own run
                return result

        tasks = [asyncio.ensure_future(one(i)) for i in inputs]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        errors = [be for errs in per_run for be in errs]
        self._branch_errors = errors
        _RUN_ERRORS.set({**(_RUN_ERRORS.get() or {}), self: errors})
        return results

    async def wait_for_branches(self) -> None:
        """Wait for every detached branch pipeline started by this graph. A pipeline that
        ended with a ``BaseException`` other than cancellation (``Exception`` s are recorded
        in ``branch_errors``) is re-raised here once all of them are done."""
        await _gather_all(self._detached_tasks)

    async def _wait_detached(self, run: _Run) -> None:
        await _gather_all(run.detached)
        if run.fatal is not None:
            raise run.fatal

    async def _cancel_detached(self, run: _Run) -> None:
        if run.detached:
            tasks = list(run.detached)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _close(self, callback: Any) -> None:
        try:
            if isinstance(callback, _StreamBase):
                await callback.close()
            else:
                close = getattr(callback, "close", None)
                if close is not None:
                    res = close()
                    if inspect.isawaitable(res):
                        await res
        except Exception as exc:  # a user callback's close() failing must not mask the result
            log_event("warning", "callback.close_failed", error_type=type(exc).__name__)

    async def _invoke_node(
        self,
        node: Any,
        payload: dict[str, Any],
        run: _Run,
        step: int,
        join: _hooks.JoinInfo | None,
    ) -> tuple[dict[str, Any], _hooks.NodeObserver]:
        """Run one node: open its span and markers, call it, validate, close both."""
        name = node.name
        stream = node.stream
        obs = run.obs.node(
            name,
            getattr(node, "kind", "router" if node.is_router else "node"),
            stream,
            step,
            join,
            payload,
            getattr(node, "model", None),
        )
        cb = run.callback
        native = run.native
        view: Any = None
        ctx_token = None
        view_token: contextvars.Token[Any] | None = None
        try:
            if stream:
                # the start markers; a native callback hands out a per-node view, a foreign
                # one is driven through its own methods (tokens reach `obs` via _ENGINE_NODE)
                if native:
                    if cb._chan.maxsize is not None:  # markers respect the bound too
                        await cb._chan.wait_space(2 if cb._id_marker else 1)
                    view = cb._open_node(name, obs)
                    view_token = _CURRENT_VIEW.set(view)
                else:
                    view_token = _ENGINE_NODE.set(obs)
                    await cb.start_node(node_name=name)
                    view = cb
            ctx_token = obs.attach()
            bind = getattr(node, "_graphai_bind", None)
            if bind is not None:
                output = await node._graphai_call(bind(payload, view, self.state))
            else:
                output = await node.invoke(input=dict(payload), callback=view, state=self.state)
            if not isinstance(output, dict):
                raise ValueError(
                    f"Expected dictionary output from node {name}. "
                    f"Instead, got {type(output)} from '{output}'."
                )
        except BaseException as exc:
            try:
                if ctx_token is not None:
                    obs.detach(ctx_token)
                if view is not None:
                    if native:
                        view._close_node(_outcome(exc))
                    else:  # a user end_node(): an await that may fail or be cancelled itself
                        with contextlib.suppress(Exception):
                            await cb.end_node(node_name=name)
            finally:
                if view_token is not None:
                    (_CURRENT_VIEW if native else _ENGINE_NODE).reset(view_token)
                obs.end(_outcome(exc), exc)
            raise
        obs.detach(ctx_token)
        try:
            if stream:
                if native:
                    try:
                        if cb._chan.maxsize is not None:
                            await cb._chan.wait_space()
                    finally:  # cancelled while waiting for space: the end marker still goes
                        view._close_node()
                else:
                    await cb.end_node(node_name=name)
        except BaseException as exc:
            obs.end(_outcome(exc), exc)
            raise
        finally:
            if view_token is not None:
                (_CURRENT_VIEW if native else _ENGINE_NODE).reset(view_token)
        if node.is_router:
            obs.router_choice(self._known_choice(output.get("choices", output.get("choice"))))
        obs.end(_hooks.OK, None, output)
        return output, obs

    async def _run_path(
        self,
        node: Any,
        payload: dict[str, Any],
        run: _Run,
        steps: int,
        stop_at_join: bool,
        pipeline: bool,
        end: _PathEnd | None,
        depth: int = 0,
    ) -> dict[str, Any]:
        """
        Run from ``node`` until an end node (or, in a parallel path, a join source; in a
        branch pipeline, a node without successors or with ``success: False``).

        A pipeline started from the main path counts its steps from 0 (upstream); one started
        from inside a pipeline goes on from its parent's count, so ``max_steps`` bounds a cycle
        through branches. ``depth`` is the pipeline nesting depth.
        """
        join: _hooks.JoinInfo | None = None
        max_steps = self.max_steps
        while True:
            output, obs = await self._invoke_node(node, payload, run, steps, join)
            join = None
            if end is not None:
                end.obs = obs
            name = node.name
            payload = {**payload, **output, "upstream": {"node": name, "output": output}}
            branches = self._branches.get(name)
            if branches:
                # a branch hop inside a pipeline counts as a step: a cycle made only of
                # branch edges still reaches max_steps
                await self._run_branches(
                    node, branches, output, payload, run, steps + 1 if pipeline else 0, depth
                )
            if (pipeline and output.get("success") is False) or self._is_end(node):
                break
            next_nodes: list[Any]
            if node.is_router and "choices" in output:
                names = output["choices"]
                del output["choices"]
                if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
                    raise GraphError(
                        f"Router {name} returned `choices` of type {type(names).__name__}; "
                        "expected a list of node names"
                    )
                next_nodes = [self._node_by_name(n) for n in names]
            elif node.is_router and (not pipeline or "choice" in output):
                choice = str(output["choice"])
                del output["choice"]
                next_nodes = [self._node_by_name(choice)]
            else:
                next_nodes = self._succ.get(name, [])
            if stop_at_join and name in self._join_of:
                break
            if not next_nodes:
                if pipeline:
                    break
                raise NoOutgoingEdgeError(f"No outgoing edge found for current node '{name}'.")
            if pipeline:
                steps += 1
                if steps >= max_steps:
                    raise MaxStepsError(max_steps, where="branch pipeline")
            if len(next_nodes) == 1:
                node = next_nodes[0]
            else:
                ends = [_PathEnd() for _ in next_nodes]
                sub_steps = steps if pipeline else steps + 1
                tasks = [
                    asyncio.ensure_future(
                        self._run_path(
                            n, payload.copy(), run, sub_steps, True, pipeline, pe, depth
                        )
                    )
                    for n, pe in zip(next_nodes, ends, strict=True)
                ]
                try:
                    results = await asyncio.gather(*tasks)
                except BaseException:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise
                merged = payload.copy()
                for res in results:
                    merged.update(res)
                join_edge = next(
                    (self._join_of[n.name] for n in next_nodes if n.name in self._join_of), None
                )
                if join_edge is None:
                    payload = merged
                    break
                times = [pe.t for pe in ends]
                join = _hooks.JoinInfo(
                    [pe.obs for pe in ends if pe.obs is not None], max(times) - min(times)
                )
                if not pipeline:
                    steps += 1
                node = join_edge.destination
                payload = merged
            if not pipeline:
                steps += 1
                if steps >= max_steps:
                    raise MaxStepsError(max_steps)
            if steps > run.steps:
                run.steps = steps
        if end is not None:
            end.t = perf_counter()
        if steps > run.steps:
            run.steps = steps
        return payload

    async def _run_branches(
        self,
        node: Any,
        branches: list[BranchEdge],
        output: dict[str, Any],
        payload: dict[str, Any],
        run: _Run,
        steps: int,
        depth: int,
    ) -> None:
        for edge in branches:
            if edge.condition is not None:
                try:
                    verdict = edge.condition(output, self.state)
                    if inspect.isawaitable(verdict):
                        verdict = await verdict
                except Exception as exc:
                    log_event(
                        "error",
                        "branch.condition_failed",
                        source=edge.source.name,
                        destination=edge.destination.name,
                        error_type=type(exc).__name__,
                    )
                    run.branch_errors.append(BranchError(edge.source.name, edge.destination.name, exc))
                    continue
                if not verdict:
                    continue
            coro = self._guard_pipeline(edge, payload.copy(), run, steps, depth + 1)
            if edge.wait:
                if depth + 1 < _INLINE_PIPELINE_DEPTH:
                    await coro
                else:  # a fresh stack; cancelling this run cancels the task too
                    await asyncio.ensure_future(coro)
            else:
                task = asyncio.ensure_future(coro)
                run.detached.add(task)
                task.add_done_callback(run.detached_done)
                self._detached_tasks.add(task)
                task.add_done_callback(self._detached_tasks.discard)

    async def _guard_pipeline(
        self, edge: BranchEdge, payload: dict[str, Any], run: _Run, steps: int, depth: int
    ) -> None:
        try:
            if steps >= self.max_steps:
                raise MaxStepsError(self.max_steps, where="branch pipeline")
            await self._run_path(edge.destination, payload, run, steps, False, True, None, depth)
        except Exception as exc:
            log_event(
                "error",
                "branch.failed",
                source=edge.source.name,
                destination=edge.destination.name,
                error_type=type(exc).__name__,
            )
            run.branch_errors.append(BranchError(edge.source.name, edge.destination.name, exc))

    def visualize(self, *, save_path: str | None = None) -> None:
        """Draw the graph with matplotlib + networkx (extra ``[viz]``)."""
        try:
            import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
        except ImportError as e:
            raise ImportError(
                "Graph visualization requires matplotlib. Install it with: `pip install matplotlib`"
            ) from e
        try:
            import networkx as nx  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as e:
            raise ImportError(
                "NetworkX is required for visualization. Please install it with `pip install networkx`."
            ) from e
        g: Any = nx.DiGraph()
        for n in self.nodes.values():
            g.add_node(n.name)
        for edge in self.edges:
            if isinstance(edge, JoinEdge):
                continue
            g.add_edge(
                edge.source.name,
                edge.destination.name,
                style="dashed" if isinstance(edge, BranchEdge) else "solid",
            )
        if nx.is_directed_acyclic_graph(g):
            pos: dict[Any, tuple[float, float]] = {}
            gens = list(nx.topological_generations(g))
            for i, gen in enumerate(gens):
                for x, n in enumerate(gen):
                    pos[n] = (x - (len(gen) - 1) / 2, float(len(gens) - i - 1))
        else:
            print("Warning: The graph contains cycles. Visualization will use a spring layout.")
            pos = nx.spring_layout(g, k=1, iterations=50)
        plt.figure(figsize=(8, 6))
        nx.draw(
            g,
            pos,
            with_labels=True,
            node_color="lightblue",
            node_size=3000,
            font_size=8,
            font_weight="bold",
            arrows=True,
            edge_color="gray",
            arrowsize=20,
            style=[g.edges[ed].get("style", "solid") for ed in g.edges],
        )
        if save_path:
            plt.savefig(save_path, bbox_inches="tight")
        else:
            plt.axis("off")
            plt.show()
        plt.close()
