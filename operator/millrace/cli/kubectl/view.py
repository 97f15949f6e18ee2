"""`get [RUN]` and `describe RUN`: runs as the cluster holds them."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .connect import Target
from .errors import PluginError
from .follow import full_result
from .tables import describe as describe_lines
from .tables import flow_of, runs_table, status_of


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    get = sub.add_parser("get", parents=[common], help="list runs: flow, phase, step, duration, age",
                         description="A table of the namespace's FlowRuns (or of RUN), oldest first.")
    get.add_argument("run", metavar="RUN", nargs="?", help="one FlowRun")
    get.add_argument("--flow", help="only the runs of this Flow")
    get.add_argument("--output", "-o", choices=["text", "json"], default="text",
                     help="json: the runs' names, flows and statuses")
    describe = sub.add_parser("describe", parents=[common], help="one run with its step tree",
                              description="RUN's phase, args, error and result, then every step it has: phase, "
                                          "duration, attempts, loop progress and errors with their stacks.")
    describe.add_argument("run", metavar="RUN")


def read_run(target: Target, name: str) -> dict[str, Any]:
    obj = target.kube.get_flowrun(target.namespace, name)
    if obj is None:
        raise PluginError(f"no FlowRun '{name}' in namespace '{target.namespace}'")
    return obj


def get(options: argparse.Namespace, target: Target) -> int:
    if options.run:
        objs = [read_run(target, options.run)]
    else:
        objs = target.kube.list_flowruns(target.namespace, "")
    if options.flow:
        objs = [o for o in objs if flow_of(o) == options.flow]
    if options.output == "json":
        print(json.dumps([{"name": o["metadata"]["name"], "flow": flow_of(o),
                           "status": status_of(o).model_dump(mode="json", by_alias=True, exclude_defaults=True)}
                          for o in objs], indent=2, default=str))
        return 0
    if not objs:
        print(f"No runs in namespace {target.namespace}.")
        return 0
    print("\n".join(runs_table(objs, time.time())))
    return 0


def describe(options: argparse.Namespace, target: Target) -> int:
    obj = read_run(target, options.run)
    status = status_of(obj)
    result = full_result(target.kube, target.namespace, status) if status.result_ref else None
    print("\n".join(describe_lines(obj, time.time(), result)))
    return 0
