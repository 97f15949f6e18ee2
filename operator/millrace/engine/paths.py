"""Find the module a module path names (`loop/3/inner`, `branch/default/x`)."""

from __future__ import annotations

from ..model.flow import BranchAll, BranchOne, FlowModule, ForloopFlow, OpenFlow, PathFlow, WhileloopFlow
from .library import Library

FAILURE_MODULE_PATH = "failure"


def module_at(flow: OpenFlow, path: str, library: Library) -> FlowModule | None:
    if path == FAILURE_MODULE_PATH:
        return flow.value.failure_module
    modules = flow.value.modules
    parts = path.split("/")
    module: FlowModule | None = None
    i = 0
    while i < len(parts):
        module = next((m for m in modules if m.id == parts[i]), None)
        if module is None:
            return None
        i += 1
        if i == len(parts):
            return module
        value = module.value
        if isinstance(value, (ForloopFlow, WhileloopFlow)):
            modules, i = value.modules, i + 1
        elif isinstance(value, BranchOne):
            modules = value.default if parts[i] == "default" else value.branches[int(parts[i])].modules
            i += 1
        elif isinstance(value, BranchAll):
            modules, i = value.branches[int(parts[i])].modules, i + 1
        elif isinstance(value, PathFlow) and value.path in library.flows:
            modules = library.flows[value.path].value.modules
        else:
            return None
    return module
