"""A script step's input transforms checked against the script's own arguments at validation.

Windmill (windmill-common schema.rs): `should_validate_schema` is true only for a script whose
first comment lines include `# schema_validation` (`//` in TypeScript); then
`SchemaValidator::validate`, built by windmill-worker schema.rs `schema_validator_from_main_arg_sig`
from the arguments without a default, fails the job with "Argument <name> is required". Arguments
main does not take are never refused (the validator only looks at main's own arguments, and each
wrapper passes main only its parameters). So: an error only for a missing argument of a script
with the annotation, a warning otherwise.
"""

from __future__ import annotations

from typing import Any

import pytest

from millrace.engine.library import Library, ScriptSource
from millrace.engine.validate import validate_flow
from millrace.model.loader import load_flow_document
from millrace.runtime.protocol import Language
from millrace.runtime.signature import Argument, signature, validates_schema

from .planner_harness import _SANDBOX

PATH = "f/tools/x"


def check(language: Language, code: str, *given: str, **value: Any) -> tuple[list[str], list[str]]:
    step = {"id": "s", "value": {"type": "script", "path": PATH, **value,
                                 "input_transforms": {name: {"type": "static", "value": 1} for name in given}}}
    loaded = load_flow_document({"summary": "t", "value": {"modules": [step]}}, "f")
    library = Library(scripts={PATH: ScriptSource(PATH, language, code)})
    found = validate_flow(loaded, library, _SANDBOX)
    return [str(p) for p in found if not p.warning], [str(p) for p in found if p.warning]


@pytest.mark.parametrize("language, code, expected", [
    ("python3", "def main(a, b: int = 2, c=None, *, d=1):\n    pass\n", [("a", True), ("b", False), ("c", False)]),
    ("bun", "export async function main(a: string, b?: Record<string, number>, c = 3,\n"
            "  cb: (x: number) => void = noop, { x }: T, ...rest: any[]) {}\n", [("a", True), ("b", False), ("c", False), ("cb", False)]),
    ("deno", "// comment, with (parens)\nexport function main(n: number /* the count, */, s = 'a,b') {}\n", [("n", True), ("s", False)]),
    ("go", "package inner\nfunc main(x int, names []string) (interface{}, error) { return nil, nil }\n", [("x", True), ("names", True)]),
    ("bash", 'a="$1"\nb="${2:-x}"\n', [("a", True), ("b", False)]),
])
def test_signatures_read_names_and_defaults(language: Language, code: str, expected: list[tuple[str, bool]]) -> None:
    found = signature(language, code)
    assert found is not None and list(found.arguments) == [Argument(name, required) for name, required in expected]


def test_the_annotation_counts_only_among_the_first_comment_lines() -> None:
    assert validates_schema("python3", "# requirements: x\n# schema_validation\ndef main(a): pass\n")
    assert validates_schema("bun", "// schema_validation  \nexport function main(a) {}\n")
    assert not validates_schema("python3", "import os\n# schema_validation\ndef main(a): pass\n")
    assert not validates_schema("bun", "# schema_validation\nexport function main(a) {}\n")


def test_a_missing_required_argument_is_a_warning_without_the_annotation() -> None:
    errors, warnings = check("python3", "def main(a, b=1):\n    return a\n")
    assert errors == []
    assert warnings == [f"warning: flow 'f', step 's', field 'value.input_transforms.a': script '{PATH}' requires the "
                        "argument 'a', which the step does not give: main gets None (or its default), as in Windmill"]


@pytest.mark.parametrize("language, code", [
    ("python3", "# schema_validation\ndef main(a, b=1):\n    return a\n"),
    ("bun", "// schema_validation\nexport function main(a: string, b?: number) { return a; }\n"),
    ("bash", '# schema_validation\na="$1"\nb="${2:-}"\necho "$a"\n'),
])
def test_a_missing_required_argument_is_an_error_with_the_annotation(language: Language, code: str) -> None:
    errors, _ = check(language, code, "b")
    assert errors == [f"flow 'f', step 's', field 'value.input_transforms.a': script '{PATH}' requires the argument 'a', "
                      "which the step does not give: the script's header has `schema_validation`, so the job would "
                      "fail with 'Argument a is required'"]
    assert check(language, code, "a") == ([], [])


def test_an_unknown_argument_is_a_warning_unless_main_takes_any() -> None:
    errors, warnings = check("go", "package inner\nfunc main(x int) (interface{}, error) { return x, nil }\n", "x", "y")
    assert errors == []
    assert warnings == [f"warning: flow 'f', step 's', field 'value.input_transforms.y': script '{PATH}' takes no "
                        "argument 'y': it is not passed to main, as in Windmill"]
    assert check("python3", "def main(x, **rest):\n    return rest\n", "x", "y") == ([], [])


def test_an_unreadable_script_is_not_checked() -> None:
    assert check("python3", "def main(a:\n", "zz") == ([], [])
