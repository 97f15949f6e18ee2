"""A script's own arguments, as Windmill's parsers read them, for checking a step's input transforms.

Windmill checks a script's arguments against its signature only when the
script's header has the `schema_validation` annotation (windmill-common
schema.rs `should_validate_schema`: a line `# schema_validation`, `//` for
TypeScript, among the first comment lines); then a job missing an argument
without a default fails with "Argument <name> is required"
(`SchemaValidator::validate`, built from the signature by windmill-worker
schema.rs `schema_validator_from_main_arg_sig`). Arguments the script does
not take are never refused: the wrappers pass main only its parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import bash_signature, go_signature
from .languages import Language
from .sdk import millrace_arguments

# Windmill's comment literal for the annotation, by language (`#` for Go too, as should_validate_schema has it).
_COMMENT: dict[Language, str] = {"python3": "#", "bash": "#", "go": "#", "bun": "//", "deno": "//"}
ANNOTATION = "schema_validation"
# What main gets for an argument the job does not carry (docs/architecture.md, each wrapper).
MISSING_VALUE: dict[Language, str] = {"python3": "None (or its default)", "bun": "undefined", "deno": "undefined",
                                      "go": "its type's zero value", "bash": "an empty string"}
_TS_MAIN = re.compile(r"\bexport\s+(?:async\s+)?function\s+main\s*(?:<[^(]*>)?\s*\(")
_TS_NAME = re.compile(r"[A-Za-z_$][\w$]*")


@dataclass(frozen=True)
class Argument:
    name: str
    required: bool  # no default: Windmill's signature says has_default false


@dataclass(frozen=True)
class Signature:
    arguments: tuple[Argument, ...]
    open_ended: bool = False  # takes any argument (a python `**kwargs`)

    def names(self) -> set[str]:
        return {argument.name for argument in self.arguments}


def signature(language: Language, code: str) -> Signature | None:
    """The arguments main takes, or None when they cannot be read (the step then fails where it runs)."""
    try:
        if language == "python3":
            parameters, open_ended = millrace_arguments.signature(code)
            return Signature(tuple(Argument(p.name, not p.has_default) for p in parameters), open_ended)
        if language in ("bun", "deno"):
            return _typescript(code)
        if language == "go":
            return Signature(tuple(Argument(name, True) for name in go_signature.parameter_names(code)))
        if language == "bash":
            return Signature(tuple(Argument(name, not has_default) for name, has_default in bash_signature.declared(code)))
    except (SyntaxError, go_signature.GoSignatureError):
        return None
    return None


def validates_schema(language: Language, code: str) -> bool:
    """Whether the script's header asks Windmill to check its arguments (`# schema_validation`)."""
    comment = _COMMENT.get(language)
    if comment is None:
        return False
    for line in code.splitlines():
        if not line.startswith(comment):
            return False
        if line.rstrip() == f"{comment} {ANNOTATION}":
            return True
    return False


def _typescript(code: str) -> Signature | None:
    """`export function main(a: T, b?: T, c = 1, ...)`: a parameter with `?` or a default is not required."""
    found = _TS_MAIN.search(code)
    if found is None:
        return None
    arguments = []
    for part in _top_level_parts(code, found.end()):
        name = _TS_NAME.match(part)
        if name is None:
            continue  # a destructured parameter has no name to pass an argument by; a rest parameter takes none
        rest = part[name.end():].lstrip()
        arguments.append(Argument(name.group(), not (rest.startswith("?") or _has_default(rest))))
    return Signature(tuple(arguments))


def _has_default(rest: str) -> bool:
    depth = 0
    for index, char in enumerate(rest):
        if char in "([{<":
            depth += 1
        elif char in ")]}" or (char == ">" and rest[index - 1:index] != "="):
            depth -= 1
        elif char == "=" and depth == 0 and rest[index + 1:index + 2] != ">":
            return True
    return False


def _top_level_parts(code: str, start: int) -> list[str]:
    """The text of each parameter of the list opening before `start`, split at top-level commas."""
    parts, depth, quote, begin, index = [], 0, "", start, start
    while index < len(code):
        char = code[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif code.startswith(("//", "/*"), index):
            end = code.find("\n" if code[index + 1] == "/" else "*/", index + 2)
            index = len(code) if end < 0 else end + (0 if code[index + 1] == "/" else 1)
        elif char in "'\"`":
            quote = char
        elif char in "([{<":
            depth += 1
        elif char == ">" and code[index - 1] == "=":
            pass  # the arrow of a function type
        elif char in ")]}>":
            if depth == 0:
                parts.append(code[begin:index])
                break
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(code[begin:index])
            begin = index + 1
        index += 1
    return [part.strip() for part in parts if part.strip()]
