"""The cost of a step (fix 11): per-step overhead does not grow with the number of edges in the
graph."""

import itertools
import time

from graphai import Graph, node


class TestFix11ConstantTimeSuccessors:
    """Per-step overhead does not grow with the number of edges in the graph."""

    async def test_per_step_cost_independent_of_edge_count(self):
        """Fails on upstream because every step scans the whole edge list (twice: regular and
        branch edges): with 5,000 unrelated edges a step costs tens of times more."""

        def build(padding):
            async def step(i: int = 0):
                return {"i": i + 1}

            g = Graph(max_steps=100)
            chain = [node(step, name=f"n{k}", start=k == 0, end=k == 19) for k in range(20)]
            for nd in chain:
                g.add_node(nd)
            for x, y in itertools.pairwise(chain):
                g.add_edge(x, y)
            if padding:

                async def pad():
                    return {}

                pa, pb = node(pad, name="pad_a"), node(pad, name="pad_b")
                g.add_node(pa).add_node(pb)
                for _ in range(padding):
                    g.add_edge(pa, pb)
            return g

        small, big = build(0), build(5000)

        async def per_run(g, runs=20):
            t0 = time.perf_counter()
            for _ in range(runs):
                await g.execute({})
            return (time.perf_counter() - t0) / runs

        assert await big.execute({}) == {"i": 20}
        best_small = best_big = float("inf")
        for _ in range(5):
            best_small = min(best_small, await per_run(small))
            best_big = min(best_big, await per_run(big))
        assert best_big < 3 * best_small, (best_small, best_big)
