"""Scripts and flows that steps reference by path, loaded before a run.

The planner never reads files: the shell resolves every `script` and `flow`
path a flow mentions into this value first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.flow import OpenFlow, PathFlow, PathScript, walk_modules
from ..runtime.protocol import Language


@dataclass(frozen=True)
class ScriptSource:
    path: str
    language: Language
    content: str


@dataclass
class Library:
    scripts: dict[str, ScriptSource] = field(default_factory=dict)
    flows: dict[str, OpenFlow] = field(default_factory=dict)


def collect_library(
    flow: OpenFlow,
    find_script: Callable[[str], ScriptSource | None],
    find_flow: Callable[[str], OpenFlow | None],
) -> Library:
    """Every script and sub-flow reachable from `flow`, found by the shell's finders.

    A path the finders do not know stays out: validation and the planner name it.
    """
    library = Library()
    pending = [flow]
    while pending:
        current = pending.pop()
        for module in walk_modules(current.value.modules, current.value.failure_module):
            value = module.value
            if isinstance(value, PathScript) and value.path not in library.scripts:
                script = find_script(value.path)
                if script is not None:
                    library.scripts[value.path] = script
            elif isinstance(value, PathFlow) and value.path not in library.flows:
                sub = find_flow(value.path)
                if sub is not None:
                    library.flows[value.path] = sub
                    pending.append(sub)
    return library
