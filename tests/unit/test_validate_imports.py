"""Workspace scripts a step imports (runtime/imports.py) that are not in the workspace are found at
validation: the step could only fail with Python's ModuleNotFoundError or bun's resolve error."""

from __future__ import annotations

from typing import Any

from millrace.engine.library import Library, ScriptSource, step_languages
from millrace.engine.validate import validate_flow
from millrace.model.loader import load_flow_document

from .planner_harness import _SANDBOX


def errors(step: dict[str, Any], scripts: dict[str, ScriptSource], library: bool = True) -> list[str]:
    loaded = load_flow_document({"summary": "t", "value": {"modules": [step]}}, "f")
    found = validate_flow(loaded, Library(scripts=scripts) if library else None, _SANDBOX)
    return [str(p) for p in found if not p.warning]


def inline(code: str, language: str = "python3") -> dict[str, Any]:
    return {"id": "s", "value": {"type": "rawscript", "language": language, "content": code, "input_transforms": {}}}


HELPER = ScriptSource("u/admin/helper", "python3", "from .names import GREETING\n\ndef greet(x):\n    return x\n")


def test_an_inline_step_importing_a_missing_script_is_refused() -> None:
    code = "import u.admin.helper\nfrom f.tools.nothing import x\n\ndef main():\n    return x\n"
    assert errors(inline(code), {"u/admin/helper": ScriptSource("u/admin/helper", "python3", "X = 1\n")}) == [
        "flow 'f', step 's', field 'value.content': the step imports the workspace script 'f/tools/nothing', "
        "which is not in the workspace"]


def test_a_missing_script_imported_by_an_imported_one_names_its_importer() -> None:
    by_path = {"id": "s", "value": {"type": "script", "path": "u/admin/helper", "input_transforms": {"x": {"type": "static", "value": 1}}}}
    assert errors(by_path, {"u/admin/helper": HELPER}) == [
        "flow 'f', step 's', field 'value.path': script 'u/admin/helper' imports the workspace script 'u/admin/names', "
        "which is not in the workspace"]
    names = ScriptSource("u/admin/names", "python3", "GREETING = 'hi'\n")
    assert errors(by_path, {"u/admin/helper": HELPER, "u/admin/names": names}) == []


def test_a_script_of_the_other_family_cannot_be_imported() -> None:
    code = 'import { x } from "/f/tools/lib.ts";\nexport function main() { return x; }\n'
    lib = ScriptSource("f/tools/lib", "python3", "x = 1\n")
    assert errors(inline(code, "bun"), {"f/tools/lib": lib}) == [
        "flow 'f', step 's', field 'value.content': the step imports the workspace script 'f/tools/lib', "
        "a python3 script, which a bun step cannot import"]


def test_without_a_library_nothing_by_path_is_checked() -> None:
    # The admission webhook: scripts may be applied after the flow.
    code = "from f.tools.nothing import x\n\ndef main():\n    return x\n"
    assert errors(inline(code), {}, library=False) == []
    assert errors({"id": "s", "value": {"type": "script", "path": "f/none"}}, {}, library=False) == []


def test_a_relative_import_in_an_inline_step_is_refused() -> None:
    message = ("names no script: millrace resolves relative imports only in scripts run by path (an inline step "
               "has no workspace path); import it by its absolute path (u/... or f/...)")
    assert errors(inline("from .helper import x\nfrom .. import y\n\ndef main():\n    return x\n"), {}, library=False) == [
        f"flow 'f', step 's', field 'value.content': the relative import '.helper' {message}",
        f"flow 'f', step 's', field 'value.content': the relative import '..' {message}"]
    assert errors(inline('import { x } from "./lib.ts";\nexport function main() { return x; }\n', "deno"), {}) == [
        f"flow 'f', step 's', field 'value.content': the relative import './lib.ts' {message}"]


def test_step_languages_are_those_of_inline_steps_nested_ones_and_scripts_by_path() -> None:
    bash = {"type": "rawscript", "language": "bash", "content": "echo 1"}
    loop = {"type": "forloopflow", "iterator": {"type": "static", "value": [1]},
            "modules": [{"id": "b", "value": {"type": "rawscript", "language": "nativets", "content": "x"}}]}
    flow = load_flow_document({"summary": "", "value": {
        "modules": [{"id": "a", "value": bash}, {"id": "l", "value": loop},
                    {"id": "p", "value": {"type": "script", "path": "f/x/y"}}],
        "failure_module": {"id": "failure", "value": {"type": "rawscript", "language": "go", "content": "x"}}}}, "f").flow
    library = Library(scripts={"f/x/y": ScriptSource("f/x/y", "python3", "def main():\n    return 1\n")})
    assert step_languages(flow, library) == {"bash", "bun", "go", "python3"}
    assert step_languages(flow, Library()) == {"bash", "bun", "go"}
