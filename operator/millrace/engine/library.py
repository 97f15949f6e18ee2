"""Scripts and flows that steps reference by path, loaded before a run.

The planner never reads files: the shell resolves every `script` and `flow`
path a flow mentions into this value first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.flow import OpenFlow, PathFlow, PathScript, RawScript, walk_modules
from ..runtime.imports import same_family, workspace_imports
from ..runtime.languages import Language, runtime_language


@dataclass(frozen=True)
class ScriptSource:
    path: str
    language: Language
    content: str
    lock: str | None = None  # the script's pinned requirements (Windmill's script lock)


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

    Scripts that steps import (workspace imports) are reachable too. A path
    the finders do not know stays out: validation and the planner name it.
    """
    library = Library()

    def find(path: str) -> ScriptSource | None:
        if path not in library.scripts:
            script = find_script(path)
            if script is None:
                return None
            library.scripts[path] = script
        return library.scripts[path]

    pending = [flow]
    while pending:
        current = pending.pop()
        for module in walk_modules(current.value.modules, current.value.failure_module):
            value = module.value
            if isinstance(value, PathScript):
                script = find(value.path)
                if script is not None:
                    imported_scripts(script.language, script.content, find, value.path)
            elif isinstance(value, RawScript) and value.content:
                language = runtime_language(value.language)
                if language is not None:
                    imported_scripts(language, value.content, find)
            elif isinstance(value, PathFlow) and value.path not in library.flows:
                sub = find_flow(value.path)
                if sub is not None:
                    library.flows[value.path] = sub
                    pending.append(sub)
    return library


def step_languages(flow: OpenFlow, library: Library) -> set[Language]:
    """The runtime languages of the scripts `flow` and its sub-flows run (inline or by path)."""
    languages = {script.language for script in library.scripts.values()}
    for current in (flow, *library.flows.values()):
        value = current.value
        for module in walk_modules([*value.modules, *([value.preprocessor_module] if value.preprocessor_module else [])],
                                   value.failure_module):
            if isinstance(module.value, RawScript) and (language := runtime_language(module.value.language)):
                languages.add(language)
    return languages


def imported_scripts(language: Language, code: str, find: Callable[[str], ScriptSource | None],
                     own_path: str | None = None) -> dict[str, ScriptSource]:
    """The workspace scripts `code` (the script at `own_path`, if any) imports, and those they import in turn.

    A script of the other family (TypeScript imported from Python) or one
    `find` does not know is left out: the step's own import then fails,
    naming it, as it would in Windmill (`missing_imports` lists them).
    """
    return _follow_imports(language, code, find, own_path)[0]


def missing_imports(language: Language, code: str, find: Callable[[str], ScriptSource | None],
                    own_path: str | None = None) -> list[MissingImport]:
    """Every workspace import reachable from `code` that names no script `find` knows of its family."""
    return _follow_imports(language, code, find, own_path)[1]


@dataclass(frozen=True)
class MissingImport:
    importer: str | None  # the script whose import it is; None: the step's own code
    path: str
    language: Language | None = None  # the script found there, of the other family; None: none found


def _follow_imports(language: Language, code: str, find: Callable[[str], ScriptSource | None],
                    own_path: str | None) -> tuple[dict[str, ScriptSource], list[MissingImport]]:
    found: dict[str, ScriptSource] = {}
    missing: list[MissingImport] = []
    pending = [(path, language, own_path) for path in workspace_imports(language, code, own_path)]
    while pending:
        path, importer, importer_path = pending.pop(0)
        if path in found:
            continue
        script = find(path)
        if script is None or not same_family(importer, script.language):
            missing.append(MissingImport(importer_path, path, script.language if script else None))
            continue
        found[path] = script
        pending.extend((nested, script.language, path)
                       for nested in workspace_imports(script.language, script.content, path))
    return found, missing
