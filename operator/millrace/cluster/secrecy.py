"""Secret values out of every record of a run, as the local shell keeps them out of its run records.

The secrets of a namespace are the values of its secret variables (Secrets
labelled `millrace.dev/kind: variable`). What the operator records in plain
objects -- step reports, `FlowRun.status`, and so the Events and conditions
made from it -- is masked with `runtime.redact`. The real values stay in this
process, by run, so a running flow goes on with them as it does locally; an
operator that restarts reads the records and sees the masks, as a local run
resumed from its record does. Values that must survive as they are travel in
Secrets only: a step's arguments, an inner flow's arguments.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any, overload

from kubernetes.client.exceptions import ApiException

from ..errors import FlowError
from ..runtime.redact import redact_json, unmask
from . import names
from .kube import KubeApi
from .secretwatch import SELECTOR, SecretWatch, secret_value


class SecretValues(Sequence[str]):
    """The values of a namespace's secret variables, listed when first needed, then kept.

    A reconcile pass holds one: it lists the Secrets at most once, right before
    it masks or unmasks something, and a pass that writes no record and holds
    no masked one (most passes: a Job event, the watch echo of a status write)
    does not list them at all. Every record written is still masked with the
    secrets as they were when that pass wrote it, as the local shell masks each
    record it saves.
    """

    def __init__(self, secrecy: Secrecy, namespace: str) -> None:
        self._secrecy = secrecy
        self._namespace = namespace
        self._values: list[str] | None = None

    def _listed(self) -> list[str]:
        if self._values is None:
            self._values = self._secrecy.secrets(self._namespace)
        return self._values

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._listed()[index]

    def __len__(self) -> int:
        return len(self._listed())

    def __iter__(self) -> Iterator[str]:
        return iter(self._listed())


class Secrecy:
    def __init__(self, kube: KubeApi, watch: SecretWatch | None = None) -> None:
        self.kube = kube
        self.watch = watch
        self._lock = threading.Lock()
        self._real: dict[tuple[str, str], Any] = {}  # (run uid, record) -> the real document

    def secrets(self, namespace: str) -> list[str]:
        """The values of the namespace's secret variables as they are now: from the watch once it has
        listed them (secretwatch.py), else listed here."""
        watched = self.watch.values(namespace) if self.watch is not None else None
        if watched is not None:
            return watched
        found = self.kube.core.list_namespaced_secret(namespace, label_selector=SELECTOR)
        return [value for item in found.items if (value := secret_value(item))]

    def written(self, namespace: str, name: str, value: str) -> None:
        """A secret variable the step API has just written: it counts from now on."""
        if self.watch is not None:
            self.watch.note(namespace, name, value)

    def values(self, namespace: str) -> SecretValues:
        """The namespace's secret values, listed on first use (see SecretValues)."""
        return SecretValues(self, namespace)

    def record(self, run_uid: str, name: str, document: Any, secrets: Sequence[str]) -> Any:
        """The masked `document` to write; the real one is kept for `restore`."""
        masked = redact_json(document, secrets)
        with self._lock:
            if masked != document:
                self._real[(run_uid, name)] = document
            else:
                self._real.pop((run_uid, name), None)
        return masked

    def restore(self, run_uid: str, name: str, recorded: Any, secrets: Sequence[str]) -> Any:
        """`recorded` with the real values this process knows put back. `secrets` is read only
        when this process masked something in that record."""
        with self._lock:
            real = self._real.get((run_uid, name))
        return recorded if real is None else unmask(recorded, real, secrets)

    def forget(self, run_uid: str) -> None:
        with self._lock:
            for key in [k for k in self._real if k[0] == run_uid]:
                del self._real[key]


KIND_ARGS = "args"
ARGS_KEY = "args"


def args_secret_name(run: str) -> str:
    return names.identity_name(run, "args")


def args_secret(run: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """The Secret that hands `args` to the FlowRun `run` (an inner flow's child run), owned by it."""
    meta = run["metadata"]
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": args_secret_name(meta["name"]), "namespace": meta["namespace"],
                     "labels": {names.LABEL_RUN: names.label_value(meta["name"]), names.LABEL_KIND: KIND_ARGS},
                     "ownerReferences": [{"apiVersion": run["apiVersion"], "kind": run["kind"], "name": meta["name"],
                                          "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
        "stringData": {ARGS_KEY: json.dumps(args)},
    }


def read_args_secret(kube: KubeApi, run: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The args of `spec.argsSecret`, None while the Secret does not exist yet.

    Only a Secret this very FlowRun owns counts: its uid exists once the run
    does, so naming another run's (or application's) Secret reads nothing.
    """
    meta = run["metadata"]
    try:
        secret = kube.core.read_namespaced_secret(name, meta["namespace"])
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    data = secret.data or {}
    owners = [o.uid for o in (secret.metadata and secret.metadata.owner_references) or []]
    if meta["uid"] not in owners or ARGS_KEY not in data:
        raise FlowError.single(meta["name"], f"Secret '{name}' is not owned by this FlowRun or has no '{ARGS_KEY}' key",
                               field="spec.argsSecret")
    try:
        args = json.loads(base64.b64decode(data[ARGS_KEY]))
    except ValueError as exc:
        raise FlowError.single(meta["name"], f"Secret '{name}': '{ARGS_KEY}' is not JSON: {exc}",
                               field="spec.argsSecret") from None
    if not isinstance(args, dict):
        raise FlowError.single(meta["name"], f"Secret '{name}': '{ARGS_KEY}' must be a JSON object", field="spec.argsSecret")
    return args
