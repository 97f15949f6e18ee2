"""`millrace variable` and `millrace resource`: the local store that steps and input transforms read."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..local.datastore import DataStore

# The store and its models are imported by the commands that use them: every other command starts without them.

COMMANDS = ("variable", "resource")
EXIT_OK, EXIT_MISSING, EXIT_INVALID = 0, 1, 2
HIDDEN = "(secret)"


def register(sub: Any) -> None:
    variable = sub.add_parser("variable", help="set, get and list variables (secrets readable by you only)")
    actions = variable.add_subparsers(dest="action", required=True)
    put = actions.add_parser("set", help="create or replace a variable")
    put.add_argument("path", help="e.g. u/alice/api_key")
    put.add_argument("value", help="the value; - reads it from stdin, out of the shell's history")
    put.add_argument("--secret", action="store_true", help="never print it, nor show it in run records or errors")
    put.add_argument("--description", default="")
    get = actions.add_parser("get", help="print a variable's value")
    get.add_argument("path")
    get.add_argument("--reveal", action="store_true", help="print a secret's value too")
    actions.add_parser("list", help="every variable; secret values hidden")

    resource = sub.add_parser("resource", help="set, get and list resources (typed JSON)")
    actions = resource.add_subparsers(dest="action", required=True)
    put = actions.add_parser("set", help="create or replace a resource")
    put.add_argument("path", help="e.g. f/team/database")
    put.add_argument("value", help="its JSON value; - reads it from stdin")
    put.add_argument("--type", dest="resource_type", default="any", help="the resource type, e.g. postgresql")
    put.add_argument("--description", default="")
    get = actions.add_parser("get", help="print a resource's value as JSON")
    get.add_argument("path")
    actions.add_parser("list", help="every resource: path, type and description")


def main(options: argparse.Namespace, store: DataStore | None = None) -> int:
    from ..local.datastore import DataFileError, DataPathError, DataStore

    store = store or DataStore()
    try:
        if options.command == "variable":
            return _variable(options, store)
        return _resource(options, store)
    except (DataPathError, DataFileError) as problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID


def _value(text: str) -> str:
    return sys.stdin.read().rstrip("\n") if text == "-" else text


def _variable(options: argparse.Namespace, store: DataStore) -> int:
    from ..runtime.stepapi.models import Variable

    if options.action == "set":
        store.set_variable(options.path, Variable(value=_value(options.value), is_secret=options.secret,
                                                  description=options.description))
        return EXIT_OK
    if options.action == "get":
        variable = store.get_variable(options.path)
        if variable is None:
            return _missing("variable", options.path)
        if variable.is_secret and not options.reveal:
            print(f"{options.path} is secret: add --reveal to print it", file=sys.stderr)
            return EXIT_OK
        print(variable.value)
        return EXIT_OK
    for path, variable in store.variables().items():
        print("\t".join((path, HIDDEN if variable.is_secret else json.dumps(variable.value), variable.description)))
    return EXIT_OK


def _resource(options: argparse.Namespace, store: DataStore) -> int:
    from ..runtime.stepapi.models import Resource

    if options.action == "set":
        try:
            value = json.loads(_value(options.value))
        except json.JSONDecodeError as problem:
            print(f"error: the value of resource {options.path} is not JSON: {problem}", file=sys.stderr)
            return EXIT_INVALID
        store.set_resource(options.path, Resource(value=value, resource_type=options.resource_type,
                                                  description=options.description))
        return EXIT_OK
    if options.action == "get":
        resource = store.get_resource(options.path)
        if resource is None:
            return _missing("resource", options.path)
        print(json.dumps(resource.value, indent=2))
        return EXIT_OK
    for path, resource in store.resources().items():
        print("\t".join((path, resource.resource_type, resource.description)))
    return EXIT_OK


def _missing(kind: str, path: str) -> int:
    print(f"error: no {kind} at path '{path}'", file=sys.stderr)
    return EXIT_MISSING
