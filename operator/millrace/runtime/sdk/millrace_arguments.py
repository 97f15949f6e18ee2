"""main()'s arguments as Windmill's python wrapper makes them. Standard library only.

Windmill's python_executor.rs (prepare_wrapper) writes them into wrapper.py
from the signature its parser reads (windmill-parser-python
parse_python_signature); the python3 wrapper imports this module from the
sdk folder, which it puts on sys.path.
"""

import ast
import base64
from datetime import date, datetime
from typing import NamedTuple

# What Windmill's parser puts for a default it cannot evaluate; such an argument is left out.
FUNCTION_CALL = "<function call>"
# Annotations whose argument the wrapper converts from its JSON form, by the name the parser reads.
CONVERTED = {"bytes": "bytes", "datetime": "datetime", "datetime.datetime": "datetime", "date": "date",
             "datetime.date": "date"}
DATE_FORMATS = ("%d-%m-%Y", "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d")


class Parameter(NamedTuple):
    name: str
    has_default: bool  # a default the parser reads a value from
    converted: str | None  # "bytes", "datetime" or "date": made from its JSON argument


def annotation_name(node: ast.expr | None) -> str | None:
    """The type name the parser reads from an annotation: `x`, `datetime.x`, `wmill.x`, in `Optional[]` or `| None`."""
    match node:
        case ast.Name(id=name):
            return name
        case ast.Attribute(value=ast.Name(id="datetime"), attr=attr):
            return f"datetime.{attr}"
        case ast.Attribute(value=ast.Name(id="wmill"), attr=attr):
            return attr
        case ast.BinOp(left=left, right=ast.Constant(value=None)):
            return annotation_name(left)
        case ast.Subscript(value=ast.Name(id="Optional"), slice=inner):
            return annotation_name(inner)
    return None


def reads_default(node: ast.expr) -> bool:
    """Whether the parser reads a value from a default (to_value): a constant, dict, list, call or `Name.attr`.

    Any other default (`-1`, a name, a tuple) reads as none: the parameter is
    treated as one without default, so it gets None when it has no argument.
    """
    return isinstance(node, (ast.Constant, ast.Dict, ast.List, ast.Call)) or (
        isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name))


def signature(code: str, function: str = "main") -> tuple[list[Parameter], bool]:
    """The parameters of the top-level `def main` (or `function`) as Windmill's parser lists them, and whether it takes **kwargs.

    Only positional-or-keyword parameters are listed; keyword-only ones and
    *args are not, so they get no argument. Without a `def main` (an async
    one, or a name bound otherwise) there are none.
    """
    main = next((node for node in ast.parse(code).body
                 if isinstance(node, ast.FunctionDef) and node.name == function), None)
    if main is None:
        return [], False
    arguments = main.args
    positional = arguments.posonlyargs + arguments.args
    defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    parameters = [Parameter(parameter.arg, default is not None and reads_default(default),
                            CONVERTED.get(annotation_name(parameter.annotation) or ""))
                  for parameter, default in zip(positional, defaults)][len(arguments.posonlyargs):]
    return parameters, arguments.kwarg is not None


def as_date(text: str) -> object:
    try:
        return date.fromisoformat(text)
    except ValueError:
        for layout in DATE_FORMATS:
            try:
                return datetime.strptime(text, layout).date()
            except ValueError:
                continue
    return text  # no layout fits: it stays the text


def convert(parameters: list[Parameter], args: dict) -> dict:
    """The arguments with those of a bytes, datetime or date parameter converted, unless null (base64, ISO 8601)."""
    converted = dict(args)
    for parameter in parameters:
        value = converted.get(parameter.name)
        if value is None or parameter.converted is None:
            continue
        if parameter.converted == "bytes":
            converted[parameter.name] = base64.b64decode(value)
        elif parameter.converted == "datetime":
            converted[parameter.name] = datetime.fromisoformat(value)
        else:
            converted[parameter.name] = as_date(value)
    return converted


def spread(parameters: list[Parameter], open_ended: bool, args: dict) -> dict:
    """The keyword arguments main() is called with, as Windmill's wrapper spreads them.

    With **kwargs, every argument as given. Otherwise each listed parameter:
    its argument, None when there is none, and nothing (so Python's default)
    when it has a default and the argument is missing or null. Arguments that
    main() does not take are dropped, and so is any whose value is
    "<function call>".
    """
    if open_ended:
        keywords = dict(args)
    else:
        keywords = {parameter.name: args.get(parameter.name) for parameter in parameters
                    if not (parameter.has_default and args.get(parameter.name) is None)}
    return {name: value for name, value in keywords.items() if value != FUNCTION_CALL}
