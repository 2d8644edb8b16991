"""
The graph state API of graphai-lib 0.0.12 (section 2.2): ``get_state``, ``set_state``,
``update_state``, ``reset_state`` and the identity of ``initial_state``.
"""

from graphai import Graph


class TestState:
    """State API: live object, replace, update, reset; non-empty `initial_state` identity kept."""

    def test_state_api(self):
        d = {"a": 1}
        g = Graph(initial_state=d)
        assert g.get_state() is d
        g.update_state({"b": 2})
        assert d == {"a": 1, "b": 2}
        new = {"z": 0}
        g.set_state(new)
        assert g.get_state() is new
        g.reset_state()
        assert g.get_state() == {}
        assert g.get_state() is not new

    def test_empty_initial_state_is_replaced(self):
        d: dict = {}
        g = Graph(initial_state=d)
        assert g.get_state() == {}
        assert g.get_state() is not d
