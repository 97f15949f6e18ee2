"""`run FLOW` and `retry RUN [--from STEP]`: make a FlowRun, and follow it with --follow."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from ...cluster import names
from ...cluster.kube import FLOWRUNS, KubeApi
from ...engine.inputs import unknown_args
from ...model.flow import OpenFlow, openflow_of
from ...model.resources import API_VERSION, GROUP, VERSION
from ..args import parse_args
from .connect import Target
from .errors import PluginError
from .follow import follow
from .tables import RETRY_OF


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[common], help="start a run of a Flow of the namespace",
                         description="Create a FlowRun of FLOW and print its name; with --follow, show its steps "
                                     "until it ends (exit code 0 when it succeeds or waits for an approval, 1 otherwise).")
    run.add_argument("flow", metavar="FLOW", help="the Flow's name")
    run.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="a flow input (repeatable)")
    run.add_argument("--args-file", type=Path, help="a JSON file holding the flow inputs")
    _follow_options(run)

    retry = sub.add_parser("retry", parents=[common], help="start a run again, with the same flow and args",
                           description="Create a FlowRun with RUN's flow and args. With --from STEP, the new run "
                                       "reuses RUN's recorded results of the top-level steps before STEP and runs "
                                       "from STEP on (spec.restartFrom).")
    retry.add_argument("run", metavar="RUN", help="the FlowRun to retry")
    retry.add_argument("--from", dest="from_step", metavar="STEP", help="a top-level step id of RUN's flow")
    _follow_options(retry)


def _follow_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--follow", "-f", action="store_true", help="show the run's steps live until it ends or suspends")
    parser.add_argument("--output", "-o", choices=["text", "json"], default="text",
                        help="json: one JSON document on stdout (the run's name, or with --follow its outcome)")


def create(kube: KubeApi, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create the FlowRun; a field this cluster's CRD does not have is refused, not dropped."""
    try:
        made = kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, FLOWRUNS, body,
                                                           field_validation="Strict")
    except ApiException as exc:
        raise PluginError(f"the FlowRun was refused: {_api_message(exc)}") from None
    return cast("dict[str, Any]", made)


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"


def _started(target: Target, options: argparse.Namespace, body: dict[str, Any]) -> int:
    made = create(target.kube, target.namespace, {"apiVersion": API_VERSION, "kind": "FlowRun", **body})
    name = made["metadata"]["name"]
    if options.follow:
        if options.output == "text":
            print(f"flowrun/{name} created", file=sys.stderr)
        return follow(target, made, options.output)
    if options.output == "json":
        print(json.dumps({"run": name, "namespace": target.namespace}, indent=2))
    else:
        print(f"flowrun/{name} created")
    return 0


def run(options: argparse.Namespace, target: Target) -> int:
    flow_obj = target.kube.get_flow(target.namespace, options.flow)
    if flow_obj is None:
        raise PluginError(f"no Flow '{options.flow}' in namespace '{target.namespace}'")
    schema = OpenFlow.model_validate(openflow_of(flow_obj["spec"])).schema_
    args = parse_args(options.flow, schema, options.arg, options.args_file)
    for warning in unknown_args(options.flow, schema, args):
        print(str(warning), file=sys.stderr)
    return _started(target, options, {
        "metadata": {"generateName": f"{options.flow}-", "namespace": target.namespace},
        "spec": {"flowRef": {"name": options.flow}, "args": args},
    })


def retry_body(old: dict[str, Any], from_step: str | None) -> dict[str, Any]:
    """The FlowRun that runs `old`'s flow again with its args (from `from_step` on, when given)."""
    meta, spec = old["metadata"], old.get("spec") or {}
    run = meta["name"]
    if names.LABEL_PARENT in (meta.get("labels") or {}):
        raise PluginError(f"flowrun/{run} is an inner flow's run (of flowrun/{meta['labels'][names.LABEL_PARENT]}): "
                          "retry the run it belongs to")
    if spec.get("argsSecret"):
        raise PluginError(f"flowrun/{run} takes args from its Secret {spec['argsSecret']}, which a new run cannot use")
    if from_step is None:
        kept = {key: spec[key] for key in ("flowRef", "flow", "args", "preprocess") if key in spec}
    else:
        if not from_step or "/" in from_step:
            raise PluginError(f"flowrun/{run}: --from takes the id of a top-level step, not '{from_step}'")
        if not spec.get("flowRef"):
            raise PluginError(f"flowrun/{run} runs an inline flow: --from restarts only a run of a Flow (spec.flowRef)")
        # A restarted run takes the args of the run it restarts (the operator refuses its own).
        kept = {"flowRef": spec["flowRef"], "restartFrom": {"run": run, "step": from_step}}
    base = (spec.get("flowRef") or {}).get("name") or run
    return {"metadata": {"generateName": f"{base}-", "namespace": meta["namespace"], "annotations": {RETRY_OF: run}},
            "spec": kept}


def retry(options: argparse.Namespace, target: Target) -> int:
    old = target.kube.get_flowrun(target.namespace, options.run)
    if old is None:
        raise PluginError(f"no FlowRun '{options.run}' in namespace '{target.namespace}'")
    return _started(target, options, retry_body(old, options.from_step))
