"""Bounds on a parsed JSON/YAML tree: one walk shared by every reader of untrusted files.

A small file can parse into a huge tree (YAML aliases) or one deep enough to exhaust the
stack of any recursive consumer, so readers check depth, value count and key types before
using what they parsed. The walk is iterative (no recursion limit to hit); each reader words
the refusal for its own user.
"""
from typing import Any, Callable


class TreeLimitExceeded(ValueError):
    """``kind`` is "nodes", "depth" or "key" (then ``key`` is the offending key)."""

    def __init__(self, kind: str, key: Any = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.key = key


def check_tree_limits(value: Any, max_nodes: int, max_depth: int, key_ok: Callable[[Any], bool]) -> None:
    """Raise :class:`TreeLimitExceeded` at the first value past ``max_nodes``, the first container
    deeper than ``max_depth`` (the root is level 1), or the first key ``key_ok`` refuses."""
    stack = [(value, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise TreeLimitExceeded("nodes")
        if depth > max_depth:
            raise TreeLimitExceeded("depth")
        if isinstance(node, dict):
            children = node.values()
            for key in node:
                if not key_ok(key):
                    raise TreeLimitExceeded("key", key)
        elif isinstance(node, list):
            children = node
        else:
            continue
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            else:
                nodes += 1
    # Leaves are counted as their container is walked; those of the last container walked are
    # compared here (a flat list of leaves has no later container to check them at).
    if nodes > max_nodes:
        raise TreeLimitExceeded("nodes")


__all__ = ["TreeLimitExceeded", "check_tree_limits"]
