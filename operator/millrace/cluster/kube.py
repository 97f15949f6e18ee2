"""The few Kubernetes calls the cluster shell makes, in one place.

A thin layer over the official client that speaks plain dicts, so the rest
of the cluster shell never handles client model classes.
"""

from __future__ import annotations

from typing import Any, Callable, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..model.resources import GROUP, VERSION
from . import names

FLOWS = "flows"
FLOWRUNS = "flowruns"


class Conflict(Exception):
    """The object changed since it was read: read it again and redo the work."""


def _sanitize(obj: Any) -> Any:
    return client.ApiClient().sanitize_for_serialization(obj)


def _json(obj: object) -> dict[str, Any]:
    """A custom objects API answer: the decoded JSON object, which the client types as `object`."""
    return cast("dict[str, Any]", obj)


class KubeApi:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)

    # --- custom resources ------------------------------------------------------

    def get_flowrun(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(lambda: self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, FLOWRUNS, name))

    def get_flow(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(lambda: self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, FLOWS, name))

    def replace_flowrun_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Write the whole status; Conflict if someone wrote since `obj` was read."""
        body = {**obj, "status": status}
        meta = obj["metadata"]
        try:
            return _json(self.custom.replace_namespaced_custom_object_status(GROUP, VERSION, meta["namespace"], FLOWRUNS, meta["name"], body))
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(meta["name"]) from None
            raise

    def create_flowrun(self, obj: dict[str, Any]) -> bool:
        """Create a FlowRun; False when it exists already."""
        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, obj["metadata"]["namespace"], FLOWRUNS, obj)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def patch_flowrun_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        try:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, FLOWRUNS, name, {"spec": spec})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def annotate_flowrun(self, namespace: str, name: str, annotations: dict[str, str]) -> dict[str, Any] | None:
        """Merge `annotations` into a FlowRun's; the FlowRun as it is now (None: it is gone)."""
        try:
            return _json(self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, FLOWRUNS, name,
                                                                    {"metadata": {"annotations": annotations}}))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_flowruns(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        found = _json(self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, FLOWRUNS, label_selector=selector))
        return list(found.get("items") or [])

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(lambda: _sanitize(self.core.read_namespaced_secret(name, namespace)))

    def annotate_secret(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self.core.patch_namespaced_secret(name, namespace, {"metadata": {"annotations": annotations}})

    def delete_flowrun(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, FLOWRUNS, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def patch_flow_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, FLOWS, name, {"status": status})

    def json_patch_flow_status(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        """A JSON patch (RFC 6902) of the Flow's status: all its operations or none (a failed `test`)."""
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, FLOWS, name, ops,
                                                          _content_type="application/json-patch+json")

    # --- core objects ----------------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> bool:
        """Create `obj`; False when it exists already (creation is idempotent by name)."""
        namespace = obj["metadata"]["namespace"]
        kind = obj["kind"]
        # The client serialises a plain dict as it does its model objects, though it types only the models.
        creators: dict[str, Callable[[str, Any], object]] = {
            "ConfigMap": self.core.create_namespaced_config_map,
            "Secret": self.core.create_namespaced_secret,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
            "Event": self.core.create_namespaced_event,
            "Job": self.batch.create_namespaced_job,
        }
        create = creators[kind]
        try:
            create(namespace, obj)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def create_owned(self, obj: dict[str, Any], what: str, owner_uid: str, path: str | None = None,
                     attempt: int | None = None) -> str | None:
        """Create `obj`, or adopt the object of its name if that one is owned by `owner_uid` (and
        annotated for `path` and `attempt` when given). Returns None, or why the existing object
        is not `what`'s: then it is left as it is."""
        if self.create(obj):
            return None
        meta = obj["metadata"]
        existing = self.read(obj["kind"], meta["namespace"], meta["name"])
        if existing is None and self.create(obj):  # deleted since: ours now
            return None
        if existing is None:
            return f"{obj['kind']} {meta['namespace']}/{meta['name']} keeps being made and deleted by someone else"
        return None if names.owned(existing, owner_uid, path, attempt) else names.foreign(obj["kind"], existing, what)

    def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        read = {
            "ConfigMap": self.core.read_namespaced_config_map,
            "Secret": self.core.read_namespaced_secret,
            "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
            "Job": self.batch.read_namespaced_job,
        }[kind]
        return self._get(lambda: _sanitize(read(name, namespace)))

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(lambda: _sanitize(self.core.read_namespaced_config_map(name, namespace)))

    def list_config_maps(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return _sanitize(self.core.list_namespaced_config_map(namespace, label_selector=selector).items)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(lambda: _sanitize(self.batch.read_namespaced_job(name, namespace)))

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return _sanitize(self.core.list_namespaced_pod(namespace, label_selector=selector).items)

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def get_claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(lambda: _sanitize(self.core.read_namespaced_persistent_volume_claim(name, namespace)))

    def delete_claim(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_persistent_volume_claim(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    @staticmethod
    def _get(call: Callable[[], Any]) -> dict[str, Any] | None:
        try:
            return call()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
