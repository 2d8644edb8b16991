from graphai.nodes.base import node, router

__all__ = ["node", "router"]
