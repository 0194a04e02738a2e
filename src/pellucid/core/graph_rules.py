"""Backward rules on the autograd graph of one pass: hooks on the graph's nodes of given types.

A rule that changes only the backward of an operation whose autograd node identifies it (every ReLU, functional
or module, in place or not, is a ``ReluBackward0`` node) can be applied after the forward pass, to the graph of
the score, instead of intercepting every torch call of the forward (:class:`~pellucid.core.hooks.FunctionRules`,
whose ``TorchFunctionMode`` costs ~10% of a small transformer's forward+backward). The graph is walked once from
the score (cost: one Python step per node), hooks go on the matching nodes and are removed after the backward
pass; the model is never touched. The backward itself is plain autograd, so a model that autograd rejects (an
in-place op overwriting a saved tensor) raises as it does without the rule.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from torch import Tensor

# grad_outputs -> new grad_outputs (before the node runs)
PreRule = Callable[[tuple], tuple]
# (grad_inputs, grad_outputs) -> new grad_inputs (after the node ran)
PostRule = Callable[[tuple, tuple], tuple]


def graph_nodes(roots: Iterable[Tensor], names: set[str]) -> list[Any]:
    """The autograd nodes reachable from ``roots`` whose type name is in ``names`` (each once)."""
    stack = [t.grad_fn for t in roots if t.grad_fn is not None]
    seen = {id(n) for n in stack}
    found = []
    while stack:
        node = stack.pop()
        if type(node).__name__ in names:
            found.append(node)
        for nxt, _ in node.next_functions:
            if nxt is not None and id(nxt) not in seen:
                seen.add(id(nxt))
                stack.append(nxt)
    return found


class GraphRules:
    """Rules by node type name: ``pre[name](grad_outputs) -> grad_outputs`` runs before such a node,
    ``post[name](grad_inputs, grad_outputs) -> grad_inputs`` replaces its result. :meth:`apply` hooks the nodes
    of a score's graph and returns the hook handles (remove them after the backward pass)."""

    def __init__(self, pre: Mapping[str, PreRule] | None = None, post: Mapping[str, PostRule] | None = None):
        self.pre = dict(pre or {})
        self.post = dict(post or {})
        self.names = set(self.pre) | set(self.post)

    def apply(self, roots: Iterable[Tensor]) -> list[Any]:
        handles = []
        try:
            for node in graph_nodes(roots, self.names):
                name = type(node).__name__
                if name in self.pre:
                    handles.append(node.register_prehook(self.pre[name]))
                if name in self.post:
                    handles.append(node.register_hook(self.post[name]))
        except BaseException:
            remove_all(handles)
            raise
        return handles


def remove_all(handles: Iterable[Any]) -> None:
    for h in handles:
        h.remove()
