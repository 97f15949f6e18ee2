"""Find the module a module path names (`loop/3/inner`, `branch/default/x`, `loop/3/failure`)."""

from __future__ import annotations

from ..model.flow import BranchAll, BranchOne, FlowModule, ForloopFlow, OpenFlow, PathFlow, WhileloopFlow
from .library import Library

# The failure module's path segment: at the top of a flow, and inside every
# sub-flow (loop iteration, branch, inner flow) that runs it.
FAILURE_MODULE_PATH = "failure"
# The preprocessor_module's path: it runs once, before the flow's first module.
PREPROCESSOR_PATH = "preprocessor"


def module_at(flow: OpenFlow, path: str, library: Library) -> FlowModule | None:
    if path == PREPROCESSOR_PATH and flow.value.preprocessor_module is not None:
        return flow.value.preprocessor_module
    current = flow
    modules = flow.value.modules
    parts = path.split("/")
    module: FlowModule | None = None
    i = 0
    while i < len(parts):
        module = next((m for m in modules if m.id == parts[i]), None)
        if module is None:
            return current.value.failure_module if parts[i] == FAILURE_MODULE_PATH and i == len(parts) - 1 else None
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
            current = library.flows[value.path]
            modules = current.value.modules
        else:
            return None
    return module
