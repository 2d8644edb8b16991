"""
The ``node`` and ``router`` decorators.

A decorated function becomes a node *class* (as upstream): ``name``, ``is_start``, ``is_end``,
``is_router``, ``stream``, ``schema`` and ``invoke``. Argument binding is precomputed at
decoration time (parameter names and defaults), so a node call costs a dict lookup per
parameter instead of ``inspect.Signature.bind``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, overload

from graphai.schema import FunctionSchema

__all__ = ["NODE_KINDS", "node", "router"]

NODE_KINDS = ("node", "router", "llm", "agent", "tool")

_EMPTY: Any = inspect.Parameter.empty


def _check_flag(value: Any, arg: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"node(): `{arg}` must be a bool, got {type(value).__name__} {value!r}")
    return value


class _Node:
    def __init__(self, is_router: bool = False) -> None:
        self.is_router = is_router

    def _node(
        self,
        func: Callable[..., Any],
        start: bool = False,
        end: bool = False,
        stream: bool = False,
        name: str | None = None,
        kind: str | None = None,
        model: str | None = None,
    ) -> type[Any]:
        """Build the node class for ``func``."""
        if not callable(func):
            raise ValueError("Node must be a callable function.")
        _check_flag(start, "start")
        _check_flag(end, "end")
        _check_flag(stream, "stream")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"node(): `name` must be a non-empty str, got {name!r}")
        if kind is None:
            kind = "router" if self.is_router else "node"
        if kind not in NODE_KINDS:
            raise ValueError(f"node(): `kind` must be one of {', '.join(NODE_KINDS)}; got {kind!r}")
        if model is not None and not isinstance(model, str):
            raise TypeError(f"node(): `model` must be a str, got {type(model).__name__}")

        func_signature = inspect.signature(func)
        schema = FunctionSchema.from_callable(func)
        fname: str = getattr(func, "__name__", type(func).__name__)
        node_name = name or fname
        is_router = self.is_router
        is_async = inspect.iscoroutinefunction(func) or (
            not inspect.isfunction(func) and inspect.iscoroutinefunction(type(func).__call__)
        )

        params: list[tuple[str, Any]] = []
        var_kw = False
        for p in func_signature.parameters.values():
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                var_kw = True
            elif p.kind is not inspect.Parameter.VAR_POSITIONAL:
                params.append((p.name, p.default))
        param_names = frozenset(n for n, _ in params)
        has_callback = "callback" in param_names
        has_state = "state" in param_names
        plain = not (has_callback or has_state or var_kw)

        def bind(
            payload: dict[str, Any], callback: Any, state: Any
        ) -> dict[str, Any]:
            if has_callback and not stream:
                raise ValueError(f"Node {fname}: requires stream=True when callback is defined.")
            kwargs: dict[str, Any] = {}
            missing: list[str] | None = None
            get = payload.get
            if plain:
                for pname, default in params:
                    v = get(pname, _EMPTY)
                    if v is _EMPTY:
                        if default is _EMPTY:
                            (missing := missing or []).append(pname)
                            continue
                        v = default
                    kwargs[pname] = v
            else:
                for pname, default in params:
                    if pname == "callback" and callback is not None:
                        v = callback
                    elif pname == "state" and state is not None:
                        v = state
                    else:
                        v = get(pname, _EMPTY)
                        if v is _EMPTY:
                            if default is _EMPTY:
                                (missing := missing or []).append(pname)
                                continue
                            v = default
                    kwargs[pname] = v
                if var_kw:
                    for k, v in payload.items():
                        if k not in param_names:
                            kwargs[k] = v
                    if callback is not None and "callback" not in param_names:
                        kwargs["callback"] = callback
            if missing:
                raise ValueError(
                    f"Missing required parameters for the {fname} node: {', '.join(missing)}"
                )
            return kwargs

        async def call(kwargs: dict[str, Any]) -> Any:
            if is_async:
                return await func(**kwargs)
            result = func(**kwargs)
            if inspect.isawaitable(result):
                return await result
            raise TypeError(
                f"Node '{node_name}': the function {fname} must be defined with `async def` "
                f"(it returned {type(result).__name__}, not an awaitable)"
            )

        class NodeClass:
            _func_signature = func_signature
            __graphai_bind__ = staticmethod(bind)
            __graphai_call__ = staticmethod(call)

            def __init__(self) -> None:
                self._expected_params = set(func_signature.parameters.keys())

            async def execute(self, *args: Any, **kwargs: Any) -> Any:
                """Run the function with the keyword arguments it declares (others ignored)."""
                names = list(func_signature.parameters.keys())
                kwargs = {**dict(zip(names, args, strict=False)), **kwargs}
                cb = kwargs.pop("callback", None) if stream else None
                st = kwargs.pop("state", None) if has_state else None
                return await call(bind(kwargs, cb, st))

            @classmethod
            def get_signature(cls) -> str:
                """The function's parameters as LLM-readable text, one per line."""
                parts = []
                for param in func_signature.parameters.values():
                    if param.default is param.empty:
                        parts.append(f"{param.name}: {param.annotation}")
                    else:
                        parts.append(f"{param.name}: {param.annotation} = {param.default}")
                return "\n".join(parts)

            @classmethod
            async def invoke(
                cls,
                input: dict[str, Any],
                callback: Any = None,
                state: dict[str, Any] | None = None,
            ) -> Any:
                """Run the node on ``input`` (never mutated). Returns the function's result."""
                if callback is not None and not stream:
                    raise ValueError(
                        f"Error in node {fname}. When callback provided, stream must be True."
                    )
                if not isinstance(input, dict):
                    raise TypeError(
                        f"Node '{node_name}': input must be a dict, got {type(input).__name__}"
                    )
                return await call(bind(input, callback, state))

        NodeClass.__name__ = fname
        NodeClass.__qualname__ = fname
        NodeClass.__doc__ = func.__doc__
        NodeClass.__module__ = getattr(func, "__module__", __name__)
        cls_any: Any = NodeClass
        cls_any.name = node_name
        cls_any.is_start = start
        cls_any.is_end = end
        cls_any.is_router = is_router
        cls_any.stream = stream
        cls_any.schema = schema
        cls_any.kind = kind
        cls_any.model = model
        cls_any.func = func
        return NodeClass

    @overload
    def __call__(
        self,
        func: Callable[..., Any],
        start: bool = False,
        end: bool = False,
        stream: bool = False,
        name: str | None = None,
        *,
        kind: str | None = None,
        model: str | None = None,
    ) -> type[Any]: ...

    @overload
    def __call__(
        self,
        func: None = None,
        start: bool = False,
        end: bool = False,
        stream: bool = False,
        name: str | None = None,
        *,
        kind: str | None = None,
        model: str | None = None,
    ) -> Callable[[Callable[..., Any]], type[Any]]: ...

    def __call__(
        self,
        func: Callable[..., Any] | None = None,
        start: bool = False,
        end: bool = False,
        stream: bool = False,
        name: str | None = None,
        *,
        kind: str | None = None,
        model: str | None = None,
    ) -> Any:
        """
        Decorate an ``async def`` function as a node: bare (``@node``), called
        (``@node(end=True)``) or functionally (``node(f, start=True)``).

        Args:
            start, end: the graph's start node / an end node.
            stream: inject the callback (``callback`` parameter) and emit node markers.
            name: node name (default: the function name).
            kind: ``node``, ``router``, ``llm``, ``agent`` or ``tool`` (span naming).
            model: the model an ``llm`` node calls (``chat {model}`` spans).

        .. versionchanged:: 0.1.0
           ``kind`` and ``model`` added; flags are type-checked.
        """

        def wrap(
            func: Callable[..., Any],
            start: bool = start,
            end: bool = end,
            stream: bool = stream,
            name: str | None = name,
        ) -> type[Any]:
            return self._node(func, start, end, stream, name, kind, model)

        if func is not None:
            return wrap(func)
        return wrap


node = _Node()
router = _Node(is_router=True)
