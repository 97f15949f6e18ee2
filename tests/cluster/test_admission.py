"""The validating webhook: the real kopf webhook server behind the real apiserver.

The apiserver reaches the webhook by URL on 127.0.0.1: the local control
plane has no kube-proxy, and Endpoints refuse loopback addresses, so a
Service reference could not be routed. The chart uses a Service reference;
everything past the connection is the same.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import yaml

from .conftest import free_port
from .webhook_tls import serving_certificate, wait_until_listening, webhook_configuration
from .test_crds import REPO, install_crds

pytestmark = pytest.mark.cluster

EXAMPLE = yaml.safe_load((REPO / "examples" / "hello-flow.yaml").read_text())
OPERATOR = """
import kopf
from millrace.cluster import admission_handlers

@kopf.on.startup()
def serve_webhooks(settings: kopf.OperatorSettings, **_):
    admission_handlers.configure_webhooks(settings, host="127.0.0.1", port={port},
                                          certfile={cert!r}, pkeyfile={key!r})
"""


@pytest.fixture
def webhook(kube, namespace, tmp_path):
    """The admission handlers served by kopf, registered for this test's namespace."""
    install_crds(kube)
    port = free_port()
    cert, key, ca = serving_certificate(tmp_path)
    script = tmp_path / "webhook_operator.py"
    script.write_text(OPERATOR.format(port=port, cert=str(cert), key=str(key)))
    log = (tmp_path / "kopf.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", namespace,
                             str(script)], env=kube.env(), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    config = f"millrace-test-{namespace}"
    try:
        kube.apply(webhook_configuration(config, namespace, port, ca))
        wait_until_listening(port, proc, tmp_path / "kopf.log")
        yield namespace
    finally:
        kube.kubectl("delete", "validatingwebhookconfiguration", config, "--ignore-not-found", check=False)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _flow(**changes) -> dict:
    flow = copy.deepcopy(EXAMPLE)
    modules = flow["spec"]["value"]["modules"]
    if changes.get("duplicate"):
        modules[1]["id"] = "greet"
    if changes.get("bad_expression"):
        modules[0]["value"]["input_transforms"]["name"]["expr"] = "flow_input.name +"
    if changes.get("nested_typo"):
        modules[1]["retry"] = {"constant": {"atempts": 3}}
    if changes.get("bad_cron"):
        flow["spec"]["schedule"] = {"cron": "61 * * * *"}
    if changes.get("bad_timezone"):
        flow["spec"]["schedule"] = {"cron": "@daily", "timezone": "Mars/Olympus"}
    return flow


def _run(run: str, args: dict | None = None) -> dict:
    return {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": run},
            "spec": {"flowRef": {"name": "hello-flow"}, "args": args or {}}}


def _rejected(kube, namespace: str, manifest: dict) -> str:
    proc = kube.apply(manifest, namespace, check=False)
    assert proc.returncode != 0, f"{manifest['kind']} was accepted:\n{proc.stdout}"
    assert "denied the request" in proc.stderr, proc.stderr
    return proc.stderr


def test_a_valid_flow_is_accepted(kube, webhook) -> None:
    kube.apply(_flow(), webhook)
    assert kube.get("flow", "hello-flow", webhook)


@pytest.mark.parametrize("change, message", [
    ("duplicate", "flow 'hello-flow', step 'greet', field 'id': duplicate step id 'greet' (also used at 'greet')"),
    ("bad_expression", "flow 'hello-flow', step 'greet', field 'value.input_transforms.name.expr': "
                       "invalid expression: "),
    ("nested_typo", "flow 'hello-flow', step 'shout', field 'retry.constant.atempts': "
                    "unknown field (known: attempts, seconds)"),
    ("bad_cron", "flow 'hello-flow', field 'spec.schedule.cron': '61 * * * *' is not a valid cron expression"),
    ("bad_timezone", "flow 'hello-flow', field 'spec.schedule.timezone': 'Mars/Olympus' is not an IANA timezone"),
])
def test_an_invalid_flow_is_rejected_with_the_validate_message(kube, webhook, change, message, tmp_path) -> None:
    flow = _flow(**{change: True})
    stderr = _rejected(kube, webhook, flow)
    assert 'admission webhook "flows.millrace.dev" denied the request' in stderr
    assert message in stderr
    # Word for word what `millrace validate` prints for the same manifest.
    path = tmp_path / "flow.yaml"
    path.write_text(json.dumps(flow))
    cli = subprocess.run([sys.executable, "-m", "millrace.cli.main", "validate", str(path)],
                         capture_output=True, text=True, env={**os.environ})
    for line in cli.stderr.splitlines():
        if line.startswith("error: "):
            assert line.removeprefix("error: ") in stderr
    assert kube.get("flow", "hello-flow", webhook) is None


def test_an_update_that_breaks_a_flow_is_rejected(kube, webhook) -> None:
    kube.apply(_flow(), webhook)
    _rejected(kube, webhook, _flow(duplicate=True))
    assert kube.get("flow", "hello-flow", webhook)["spec"] == EXAMPLE["spec"]


def test_flowrun_args_are_checked_against_the_flow_schema(kube, webhook) -> None:
    kube.apply(_flow(), webhook)
    bad = _run("bad", {"name": "x", "times": "three"})
    expected = ("flowrun 'bad': args do not match the schema of flow 'hello-flow': "
                "input 'times': 'three' is not of type 'integer'")

    def rejected_with_message() -> bool:
        # The webhook knows a Flow once its watch saw it: a moment after the apply.
        proc = kube.apply(bad, webhook, check=False)
        if proc.returncode == 0:
            kube.kubectl("delete", "flowrun", "bad", "-n", webhook, check=False)
            return False
        return expected in proc.stderr

    kube.wait_for(rejected_with_message, 30, "the FlowRun with bad args to be rejected", interval=0.5)
    kube.apply(_run("good", {"name": "x", "times": 2}), webhook)
    assert kube.get("flowrun", "good", webhook)


def test_a_flowrun_needs_exactly_one_flow(kube, webhook) -> None:
    both = _run("both")
    both["spec"]["flow"] = EXAMPLE["spec"]
    # The CRD's own rule refuses it before the webhook is asked, with the webhook's words.
    refused = kube.apply(both, webhook, check=False)
    assert refused.returncode != 0 and "set exactly one of spec.flowRef" in refused.stderr, refused.stderr
    inline = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "inline"},
              "spec": {"flow": _flow(nested_typo=True)["spec"]}}
    assert "field 'retry.constant.atempts': unknown field" in _rejected(kube, webhook, inline)


def test_a_restart_is_checked_against_the_flows_top_level_steps_and_brings_no_args(kube, webhook) -> None:
    kube.apply(_flow(), webhook)
    restart = _run("again")
    del restart["spec"]["args"]
    restart["spec"]["restartFrom"] = {"run": "first", "step": "nope"}
    expected = ("flow 'hello-flow', step 'nope', field 'spec.restartFrom.step': no such top-level step in the flow "
                "(a run restarts from a top-level step)")

    def rejected_with_message() -> bool:
        proc = kube.apply(restart, webhook, check=False)
        if proc.returncode == 0:  # the webhook has not seen the Flow yet
            kube.kubectl("delete", "flowrun", "again", "-n", webhook, check=False)
            return False
        return expected in proc.stderr

    kube.wait_for(rejected_with_message, 30, "the restart from an unknown step to be rejected", interval=0.5)
    with_args = _run("again", {"name": "x", "times": 2})
    with_args["spec"]["restartFrom"] = {"run": "first", "step": "greet"}
    assert "flowrun 'again': spec.args: a restarted run gets the args of the run it restarts" in _rejected(kube, webhook, with_args)
    # The CRD's rule, before the webhook: a restart goes with flowRef.
    inline = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": "inline"},
              "spec": {"flow": EXAMPLE["spec"], "restartFrom": {"run": "first", "step": "greet"}}}
    refused = kube.apply(inline, webhook, check=False)
    assert refused.returncode != 0 and "spec.restartFrom restarts a run of the Flow spec.flowRef names" in refused.stderr
    restart["spec"]["restartFrom"]["step"] = "greet"
    kube.apply(restart, webhook)
    assert kube.get("flowrun", "again", webhook)


def test_a_run_stays_cancellable_and_deletable_when_its_flow_changed_since(kube, webhook) -> None:
    kube.apply(_flow(), webhook)
    kube.wait_for(lambda: kube.apply(_run("old", {"name": "x", "times": 2}), webhook, check=False).returncode == 0,
                  30, "the run accepted", interval=0.5)
    # The Flow's schema tightens: the old run's args would no longer be accepted.
    stricter = _flow()
    stricter["spec"]["schema"]["properties"]["times"]["minimum"] = 5
    kube.apply(stricter, webhook)

    def still_checked_against_the_old_schema() -> bool:
        return "less than the minimum of 5" in kube.apply(_run("new", {"name": "x", "times": 2}), webhook,
                                                          check=False).stderr

    kube.wait_for(still_checked_against_the_old_schema, 30, "the webhook to know the new schema", interval=0.5)
    kube.kubectl("patch", "flowrun", "old", "-n", webhook, "--type=merge", "-p",
                 '{"metadata": {"finalizers": ["example.com/hold"]}, "spec": {"cancel": true}}')
    kube.kubectl("patch", "flowrun", "old", "-n", webhook, "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
    kube.kubectl("delete", "flowrun", "old", "-n", webhook)


def test_the_spec_of_a_started_run_is_immutable_except_cancel(kube, webhook) -> None:
    kube.apply(_flow(), webhook)
    kube.wait_for(lambda: kube.apply(_run("started", {"name": "x"}), webhook, check=False).returncode == 0,
                  30, "the run accepted", interval=0.5)
    kube.kubectl("patch", "flowrun", "started", "-n", webhook, "--subresource=status", "--type=merge",
                 "-p", '{"status": {"phase": "Running"}}')
    moved = kube.kubectl("patch", "flowrun", "started", "-n", webhook, "--type=merge",
                         "-p", '{"spec": {"flowRef": {"name": "other"}}}', check=False)
    assert moved.returncode != 0
    assert ("the spec of a run that started is immutable except spec.cancel (changed: spec.flowRef)"
            in moved.stderr), moved.stderr
    kube.kubectl("patch", "flowrun", "started", "-n", webhook, "--type=merge", "-p", '{"spec": {"cancel": true}}')
    assert kube.get("flowrun", "started", webhook)["spec"] == {"flowRef": {"name": "hello-flow"},
                                                              "args": {"name": "x"}, "cancel": True}
