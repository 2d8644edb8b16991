"""Helpers shared by the ``tests/engine`` modules: a small graph to build on, and a snapshot of
a graph's observable structure (a failed builder call must leave it unchanged)."""

from graphai import Graph, node, router


def snapshot(g):
    """The observable structure of a graph."""
    return (
        dict(g.nodes),
        [
            (
                type(e).__name__,
                getattr(e, "source", None),
                tuple(getattr(e, "sources", ())),
                e.destination,
            )
            for e in g.edges
        ],
        g.start_node,
        list(g.end_nodes),
        set(g.join_nodes),
        g.Callback,
        g.state,
    )


def base_graph():
    @node(start=True)
    async def a():
        return {"a": 1}

    @node
    async def b():
        return {"b": 1}

    @node(end=True)
    async def end():
        return {"end": 1}

    @router
    async def r():
        return {"choice": "end"}

    g = Graph().add_node(a).add_node(b).add_node(end).add_node(r)
    g.add_edge(a, b).add_edge(b, end)
    return g, a, b, end, r
