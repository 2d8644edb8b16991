"""
Node and router decorators of graphai-lib 0.0.12 (section 7 check 1, section 2.1): the bare,
called and functional forms, the class attributes they set, the schema built at decoration,
``get_signature()`` and ``invoke()`` with its argument filtering and callback check.
"""

import pytest

from graphai import Callback, node, router


class TestNodeDecorators:
    """`node`/`router` build node classes with name, flags, schema and invoke (check 1)."""

    def test_bare_decorator_uses_function_name_and_default_flags(self):
        @node
        async def f(x: int):
            """Doc of f."""
            return {}

        assert isinstance(f, type)
        assert (f.name, f.is_start, f.is_end, f.is_router, f.stream) == (
            "f",
            False,
            False,
            False,
            False,
        )
        assert f.__name__ == "f"
        assert f.__doc__ == "Doc of f."

    def test_called_decorator_with_flags(self):
        @node()
        async def g():
            return {}

        @node(start=True, end=True, stream=True)
        async def h():
            return {}

        assert (g.name, g.is_start, g.is_end, g.stream) == ("g", False, False, False)
        assert (h.name, h.is_start, h.is_end, h.stream) == ("h", True, True, True)

    def test_name_argument_overrides_name_but_not_dunder_name(self):
        @node(name="x")
        async def f():
            return {}

        assert f.name == "x"
        assert f.__name__ == "f"

    def test_functional_form(self):
        async def f():
            return {}

        n = node(f, end=True)
        assert (n.name, n.is_end, n.is_start, n.is_router) == ("f", True, False, False)

    def test_router_decorator_sets_is_router(self):
        @router
        async def r():
            return {"choice": "a"}

        @router(end=True, name="rr")
        async def r2():
            return {"choice": "a"}

        assert r.is_router is True
        assert (r2.is_router, r2.is_end, r2.name) == (True, True, "rr")

    def test_instance_carries_the_class_attributes(self):
        @node(start=True, stream=True)
        async def f():
            return {}

        inst = f()
        assert (inst.name, inst.is_start, inst.is_end, inst.is_router, inst.stream) == (
            "f",
            True,
            False,
            False,
            True,
        )

    def test_non_callable_raises_value_error(self):
        with pytest.raises(ValueError) as ei:
            node(123)
        assert str(ei.value) == "Node must be a callable function."

    def test_get_signature_text(self):
        @node
        async def f(x: int, y: str = "d"):
            return {}

        assert f.get_signature() == "x: <class 'int'>\ny: <class 'str'> = d"

    def test_schema_is_built_at_decoration(self):
        @node
        async def f(x: int, y: str = "d"):
            """Describe f."""
            return {}

        assert f.schema.name == "f"
        assert f.schema.description == "Describe f."

    async def test_invoke_runs_the_function_with_filtered_arguments(self):
        @node
        async def f(x: int, y: int = 2):
            return {"sum": x + y}

        assert await f.invoke({"x": 1, "other": 0}) == {"sum": 3}
        assert await f().invoke({"x": 1, "y": 5}) == {"sum": 6}

    async def test_invoke_with_callback_on_non_stream_node_raises(self):
        @node
        async def f():
            return {}

        with pytest.raises(ValueError) as ei:
            await f.invoke({}, callback=Callback())
        assert str(ei.value) == "Error in node f. When callback provided, stream must be True."
