"""Find the scripts and flows a flow references by path, on disk.

Windmill workspaces keep `f/folder/name.py` scripts and
`f/folder/name.flow/flow.yaml` flows under one root; a flow file sits
somewhere below that root. We look in the given folders, then in the flow
file's folder and its parents. A Hub path (`hub/<id>/<app>/<name>`) is looked
for there too, then in the catalog shipped with millrace (millrace/hub).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..engine.library import Library, ScriptSource, collect_library
from ..hub import CATALOG_ROOT, is_hub_path
from ..model.flow import OpenFlow
from ..model.loader import load_flow_file
from ..runtime.languages import SCRIPT_SUFFIXES
LOCK_SUFFIX = ".script.lock"
FLOW_LAYOUTS = ("{}.flow/flow.yaml", "{}__flow/flow.yaml", "{}.flow/flow.json", "{}.yaml", "{}.flow.json")
_PARENT_LEVELS = 5


def search_roots(flow_file: Path | None, extra: Iterable[Path] = ()) -> list[Path]:
    roots = [p.resolve() for p in extra]
    if flow_file is not None:
        here = flow_file.resolve().parent
        for _ in range(_PARENT_LEVELS):
            roots.append(here)
            if here.parent == here:
                break
            here = here.parent
    return roots


def build_library(flow: OpenFlow, roots: list[Path]) -> Library:
    """Resolve every script and sub-flow path reachable from `flow`."""
    return collect_library(flow, lambda path: find_script(path, roots), lambda path: _find_flow(path, roots))


def find_script(path: str, roots: list[Path]) -> ScriptSource | None:
    """The script at `path` in the first of `roots` holding it (a Hub path: then in the shipped catalog)."""
    return script_in(path, [*roots, CATALOG_ROOT] if is_hub_path(path) else roots)


def script_in(path: str, roots: list[Path]) -> ScriptSource | None:
    for root in roots:
        for suffix, language in SCRIPT_SUFFIXES:
            candidate = root / f"{path}{suffix}"
            if candidate.is_file():
                # Windmill's CLI keeps a script's lock beside it as <path>.script.lock.
                lock = root / f"{path}{LOCK_SUFFIX}"
                return ScriptSource(path=path, language=language, content=candidate.read_text(encoding="utf-8"),
                                    lock=lock.read_text(encoding="utf-8") if lock.is_file() else None)
    return None


def _find_flow(path: str, roots: list[Path]) -> OpenFlow | None:
    for root in roots:
        for layout in FLOW_LAYOUTS:
            candidate = root / layout.format(path)
            if candidate.is_file():
                return load_flow_file(candidate).flow
    return None
