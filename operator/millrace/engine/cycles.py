"""Flows that call themselves, directly or through other flows, seen before a run.

A `flow` step runs the flow at its path as a sub-flow; a chain of such steps
that comes back to a flow already on it would never end.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..model.flow import FlowModule, OpenFlow, PathFlow, walk_modules
from .library import Library


def _calls(flow: OpenFlow) -> Iterator[tuple[FlowModule, str]]:
    """The `flow` steps of a flow (its failure module's included), with the path each calls."""
    for module in walk_modules(flow.value.modules, flow.value.failure_module):
        if isinstance(module.value, PathFlow):
            yield module, module.value.path


def call_cycles(flow: OpenFlow, library: Library) -> list[tuple[FlowModule, list[str]]]:
    """For each step of `flow` that leads into a cycle of flow calls: the step and the cycle's paths.

    The cycle is given from its first flow back to that flow (`f/a -> f/b -> f/a`).
    A path the library does not hold ends a chain: validation reports it as not found.
    """
    found = []
    acyclic: set[str] = set()
    for module, path in _calls(flow):
        cycle = _cycle_from(path, library, [], acyclic)
        if cycle:
            found.append((module, cycle))
    return found


def _cycle_from(path: str, library: Library, chain: list[str], acyclic: set[str]) -> list[str] | None:
    if path in chain:
        return [*chain[chain.index(path):], path]
    sub = library.flows.get(path)
    if sub is None or path in acyclic:
        return None
    for _, callee in _calls(sub):
        cycle = _cycle_from(callee, library, [*chain, path], acyclic)
        if cycle:
            return cycle
    acyclic.add(path)  # every chain through it ends
    return None
