"""The values of a namespace's secret variables, kept current by a watch instead of a list per record.

Masking a record needs every secret value of the namespace (secrecy.py). A
list of the labelled Secrets for each record -- a step's report, the status
write that follows it -- was two apiserver requests per step; a watch of
the same Secrets costs one request per few minutes. The first time a
namespace is asked for, its watch starts; until it has listed the Secrets
(and whenever it has lost its stream), `values` answers None and the caller
lists them itself, as before. A value the step API has just written is
noted at once (`note`): a report right after it is masked with it, without
waiting for the watch to show the write.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from . import names
from .data import KIND_VARIABLE
from .kube import KubeApi

LOG = logging.getLogger("millrace.secrets")
SELECTOR = f"{names.LABEL_KIND}={KIND_VARIABLE}"
WATCH_S = 300  # the apiserver ends a watch after this; it goes on from where it was
RETRY_S = 1.0


def secret_value(secret: Any) -> str | None:
    """A secret variable's value (the `value` key of a Secret, as a dict or the client's model), decoded."""
    data = secret.get("data") if isinstance(secret, dict) else secret.data
    value = (data or {}).get("value")
    return base64.b64decode(value).decode("utf-8", errors="replace") if value else None


class SecretWatch:
    """One watch per namespace, started on first use; daemon threads, gone with the process."""

    def __init__(self, kube: KubeApi) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, str]] = {}  # namespace -> Secret name -> value
        self._synced: set[str] = set()
        self._started: set[str] = set()

    def values(self, namespace: str) -> list[str] | None:
        """The namespace's secret values as the watch shows them; None until its watch has listed them."""
        with self._lock:
            if namespace not in self._started:
                self._started.add(namespace)
                threading.Thread(target=self._follow, args=(namespace,), name=f"secrets-{namespace}", daemon=True).start()
            return list(self._values.get(namespace, {}).values()) if namespace in self._synced else None

    def note(self, namespace: str, name: str, value: str) -> None:
        """A value the step API has just written, counted before its watch event comes."""
        with self._lock:
            self._values.setdefault(namespace, {})[name] = value

    def _follow(self, namespace: str) -> None:
        while True:
            try:
                listed = self.kube.api_client.sanitize_for_serialization(
                    self.kube.core.list_namespaced_secret(namespace, label_selector=SELECTOR))
                found = {item["metadata"]["name"]: value for item in listed["items"] if (value := secret_value(item))}
                with self._lock:
                    # Noted values the list may predate stay until an event says otherwise: extra masks are harmless.
                    self._values[namespace] = {**self._values.get(namespace, {}), **found}
                    self._synced.add(namespace)
                self._stream(namespace, listed["metadata"]["resourceVersion"])
            except Exception as exc:  # noqa: BLE001 -- any failure: list again, meanwhile callers list themselves
                if not (isinstance(exc, ApiException) and exc.status == 410):
                    # The kind of failure only: what came with it could quote a Secret.
                    what = f"{exc.status} {exc.reason}" if isinstance(exc, ApiException) else type(exc).__name__
                    LOG.warning("watch of secret variables in %s failed (%s): listing them again", namespace, what)
                with self._lock:
                    self._synced.discard(namespace)
                time.sleep(RETRY_S)

    def _stream(self, namespace: str, version: str) -> None:
        """Apply the watch's events from `version` on, for as long as the stream lasts (it is resumed from
        the last version seen); returns only by an exception (a version too old: 410)."""
        follower = watch.Watch()
        while True:
            for event in follower.stream(self.kube.core.list_namespaced_secret, namespace, label_selector=SELECTOR,
                                         resource_version=version, timeout_seconds=WATCH_S,
                                         allow_watch_bookmarks=True,
                                         # A stream that stalls without ending is ended here, and listed again.
                                         _request_timeout=WATCH_S + 30):
                secret, value = event["object"], None
                if event["type"] in ("ADDED", "MODIFIED"):
                    value = secret_value(secret)
                elif event["type"] != "DELETED":
                    continue  # a bookmark: only its version counts
                with self._lock:
                    known = self._values.setdefault(namespace, {})
                    if value is None:
                        known.pop(secret.metadata.name, None)
                    else:
                        known[secret.metadata.name] = value
            version = follower.resource_version or version
