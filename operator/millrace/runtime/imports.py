"""What a step's code imports: packages, and other scripts of the workspace.

Windmill reads a Python script's imports from its top-level statements before
`def main(` (windmill-parser-py-imports): a module whose first part is `u` or
`f` is another workspace script (`import u.admin.helper` is the script
`u/admin/helper`), a relative import (`from .x import y`) one beside it, any
other a package. A TypeScript script imports another by its absolute path
(`/f/folder/x.ts`, `.ts` optional) or, from a workspace script, relative to
its own path. Pure functions of the code; the shells materialise what is
found as files beside the step (`module_files`).
"""

from __future__ import annotations

import ast
import posixpath
import re
from dataclasses import dataclass

from .languages import Language

WORKSPACE_ROOTS = ("u", "f")
DEF_MAIN = "def main("
# Cheap tests first: most steps import no workspace script, and the planner asks on every launch.
_PYTHON_MAY_IMPORT = re.compile(r"\b(?:import|from)\s+(?:[uf]\.|\.)")
_TYPESCRIPT_MAY_IMPORT = re.compile(r"""["'](?:/[uf]/|\.\.?/)""")
# import/export ... from "x", import "x", import("x"): the specifier.
_TS_SPECIFIER = re.compile(r"""(?:\bfrom|\bimport)\s*\(?\s*(["'])([^"'\n]+)\1""")
# `from .x import y`, `from .. import z`: the dots and the module after them.
_PY_RELATIVE = re.compile(r"^(\s*from\s+)(\.+)([\w.]*)(?=\s+import\b)", re.MULTILINE)
PYTHON: frozenset[Language] = frozenset({"python3"})
TYPESCRIPT: frozenset[Language] = frozenset({"bun", "deno"})


@dataclass(frozen=True)
class PythonImport:
    """One imported module: a package's module, or a workspace script's path."""

    module: str  # as written: `yaml`, `google.cloud.storage`; the script path for a workspace import
    line: int  # 1-based line of the import statement
    workspace: bool = False


def python_imports(code: str, own_path: str | None = None) -> list[PythonImport]:
    """The modules the script imports at its top level before `def main(`, in order.

    A relative import resolves against `own_path` (the script's workspace
    path); without one (an inline step) it names nothing. Code that does not
    parse imports nothing: the step then fails where Python reports it.
    """
    head = code.split(DEF_MAIN, 1)[0]
    lines = head.split("\n")
    if lines and lines[-1].startswith("@"):
        head = "\n".join(lines[:-1])  # main's decorator, cut from its function
    try:
        tree = ast.parse(head)
    except SyntaxError:
        return []
    found: list[PythonImport] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.extend(_absolute(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            target = _relative(own_path, node.level, node.module)
            if target is not None:
                found.append(PythonImport(target, node.lineno, workspace=True))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(_absolute(node.module, node.lineno))
    return found


def _absolute(module: str, line: int) -> PythonImport:
    if module.split(".", 1)[0] in WORKSPACE_ROOTS:
        return PythonImport(module.replace(".", "/"), line, workspace=True)
    return PythonImport(module, line)


def _relative(own_path: str | None, level: int, module: str | None) -> str | None:
    if own_path is None or level >= own_path.count("/") + 1:
        return None  # above the workspace's top: Python refuses it too
    parts = own_path.split("/")[:-level]
    if module:
        parts.extend(module.split("."))
    return "/".join(parts) if parts else None


def typescript_imports(code: str, own_path: str | None = None) -> list[str]:
    """The workspace scripts a TypeScript script imports, by path (no suffix)."""
    found: list[str] = []
    for match in _TS_SPECIFIER.finditer(code):
        specifier = match.group(2)
        if specifier.startswith("/"):
            path = posixpath.normpath(specifier[1:])
        elif specifier.startswith(("./", "../")) and own_path is not None:
            path = posixpath.normpath(posixpath.join(posixpath.dirname(own_path), specifier))
        else:
            continue
        path = path.removesuffix(".ts")
        # Normalised, a path that still climbs (`/f/../../x`) is no workspace script: it is never written.
        if path.split("/", 1)[0] in WORKSPACE_ROOTS and ".." not in path.split("/") and path not in found:
            found.append(path)
    return found


def inline_relative_imports(language: Language, code: str) -> list[str]:
    """The relative imports of an inline step's code, as written (`.helper`, `./x.ts`).

    An inline step has no workspace path, so they resolve to nothing here
    (Windmill resolves them against a path it gives the flow's step).
    """
    if language in PYTHON and _PYTHON_MAY_IMPORT.search(code):
        try:
            tree = ast.parse(code.split(DEF_MAIN, 1)[0])
        except SyntaxError:
            return []
        return ["." * node.level + (node.module or "") for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.level]
    if language in TYPESCRIPT and _TYPESCRIPT_MAY_IMPORT.search(code):
        return [m.group(2) for m in _TS_SPECIFIER.finditer(code) if m.group(2).startswith(("./", "../"))]
    return []


def workspace_imports(language: Language, code: str, own_path: str | None = None) -> list[str]:
    """The workspace script paths `code` imports directly (Python and TypeScript; others import none)."""
    if language in PYTHON and _PYTHON_MAY_IMPORT.search(code):
        return list(dict.fromkeys(i.module for i in python_imports(code, own_path) if i.workspace))
    if language in TYPESCRIPT and _TYPESCRIPT_MAY_IMPORT.search(code):
        return typescript_imports(code, own_path)
    return []


def module_file(language: Language, path: str) -> str:
    """Where an imported workspace script is written beside the step: `u/admin/helper.py`."""
    return f"{path}.py" if language in PYTHON else f"{path}.ts"


def same_family(a: Language, b: Language) -> bool:
    """Whether a script in `b` can be imported from one in `a` (Python from Python, TypeScript from TypeScript)."""
    return (a in PYTHON and b in PYTHON) or (a in TYPESCRIPT and b in TYPESCRIPT)


def absolute_imports(language: Language, code: str, own_path: str | None) -> str:
    """The code of the script at `own_path` with its relative imports made absolute workspace ones.

    A step runs as main.py / main.ts at the top of its folder, not at its
    path, so `from .helper import x` in `f/lib/entry` becomes
    `from f.lib.helper import x` and `"./helper.ts"` `"/f/lib/helper.ts"`,
    in place (line numbers stay the script's).
    """
    if own_path is None:
        return code
    if language in PYTHON:
        def python(match: re.Match[str]) -> str:
            target = _relative(own_path, len(match.group(2)), match.group(3) or None)
            return match.group(1) + target.replace("/", ".") if target else match.group(0)

        return _PY_RELATIVE.sub(python, code)
    if language in TYPESCRIPT:
        def typescript(match: re.Match[str]) -> str:
            quote, specifier = match.group(1), match.group(2)
            if not specifier.startswith(("./", "../")):
                return match.group(0)
            target = posixpath.normpath(posixpath.join(posixpath.dirname(own_path), specifier))
            return match.group(0).replace(f"{quote}{specifier}{quote}", f"{quote}/{target}{quote}")

        return _TS_SPECIFIER.sub(typescript, code)
    return code
