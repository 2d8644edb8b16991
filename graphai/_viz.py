"""``Graph.visualize()``: matplotlib + networkx (extra ``[viz]``), imported on call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphai._types import BranchEdge, JoinEdge

if TYPE_CHECKING:
    from graphai.graph import Graph

__all__ = ["visualize"]


def visualize(graph: Graph, *, save_path: str | None = None) -> None:
    """Draw ``graph`` (see :meth:`graphai.Graph.visualize`)."""
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
    for n in graph.nodes.values():
        g.add_node(n.name)
    for edge in graph.edges:
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
