"""
``Graph.compile()`` of graphai-lib 0.0.12 (section 7 checks 15, 16, 18, 28, section 2.4): its
validation errors and messages, ``strict=True`` cycle detection, what counts as reachable.
Check 28's quirk (join edges ignored by ``compile()``) and check 18's ``set_end_node`` quirk are
asserted as fixed (``docs/differences.md`` fix 5); ``tests/fixes/`` proves the difference.
"""

import asyncio

import pytest

from graphai import Graph, GraphCompileError, GraphError, NoOutgoingEdgeError
from tests._stream import TIMEOUT
from tests.compat._support import _nodes


class TestCompile:
    """`compile()` validation errors and strict-mode cycle checks (checks 15, 16, 18, 28)."""

    def test_empty_graph(self):
        with pytest.raises(GraphCompileError) as ei:
            Graph().compile()
        assert str(ei.value) == "No nodes have been added to the graph"
        assert isinstance(ei.value, GraphError)

    def test_no_start(self):
        _, b, _, end = _nodes()
        g = Graph().add_node(b).add_node(end).add_edge(b, end)
        with pytest.raises(GraphCompileError) as ei:
            g.compile()
        assert str(ei.value) == "No start node defined"

    def test_no_end(self):
        a, b, _, _ = _nodes()
        g = Graph().add_node(a).add_node(b).add_edge(a, b)
        with pytest.raises(GraphCompileError) as ei:
            g.compile()
        assert str(ei.value) == "No end node defined"

    def test_unreachable(self):
        a, b, c, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(c).add_node(end)
        g.add_edge(a, b).add_edge(b, end)
        with pytest.raises(GraphCompileError) as ei:
            g.compile()
        assert str(ei.value) == "Unreachable nodes: ['c']"

    def test_unreachable_sorted(self):
        a, b, c, end = _nodes()
        g = Graph().add_node(a).add_node(end).add_node(c).add_node(b).add_edge(a, end)
        with pytest.raises(GraphCompileError) as ei:
            g.compile()
        assert str(ei.value) == "Unreachable nodes: ['b', 'c']"

    def test_cycle_allowed_by_default_rejected_in_strict(self):
        a, b, _, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(end)
        g.add_edge(a, b).add_edge(b, a).add_edge(b, end)
        assert g.compile() is g
        with pytest.raises(GraphCompileError) as ei:
            g.compile(strict=True)
        assert str(ei.value) == "cycle detected in graph (strict mode)"

    def test_self_loop_rejected_in_strict(self):
        a, _, _, end = _nodes()
        g = Graph().add_node(a).add_node(end).add_edge(a, a).add_edge(a, end)
        g.compile()
        with pytest.raises(GraphCompileError) as ei:
            g.compile(strict=True)
        assert str(ei.value) == "cycle detected in graph (strict mode)"

    def test_strict_is_keyword_only(self):
        a, _, _, end = _nodes()
        g = Graph().add_node(a).add_node(end).add_edge(a, end)
        with pytest.raises(TypeError):
            g.compile(True)

    def test_branch_only_nodes_are_reachable_even_strict(self):
        a, _, c, end = _nodes()
        g = Graph().add_node(a).add_node(c).add_node(end).add_edge(a, end).add_branch(a, c)
        assert g.compile(strict=True) is g

    def test_join_destination_counts_as_reachable(self):
        """Check 28, fixed (docs/differences.md fix 5)."""
        a, b, c, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(c).add_node(end)
        g.add_parallel(a, [b, c]).add_join([b, c], end)
        assert g.compile() is g

    async def test_dead_end_not_detected_by_compile_but_fails_at_run_time(self):
        a, b, _, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(end).add_edge(a, b).add_branch(a, end)
        assert g.compile() is g
        with pytest.raises(NoOutgoingEdgeError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert isinstance(ei.value, GraphError)
        assert str(ei.value) == "No outgoing edge found for current node 'b'."

    async def test_set_end_node_makes_the_node_terminal(self):
        """Check 18's `set_end_node` quirk, fixed with docs/differences.md fix 5: a node that
        `compile()` accepts as the end node also ends the run."""
        a, b, _, _ = _nodes()
        g = Graph().add_node(a).add_node(b).add_edge(a, b).set_end_node(b)
        assert g.compile() is g
        assert await asyncio.wait_for(g.execute({"x": 1}), TIMEOUT) == {"x": 1}
