"""Leader election: of several operator replicas, one acts and the others wait.

A coordination.k8s.io Lease in the operator's namespace names its holder.
The holder renews it every `retry_s`; a candidate takes it over only once the
Lease has stayed unchanged for its whole `leaseDurationSeconds`, timed on the
candidate's own clock (so clock skew between nodes does not matter). The
holder stops acting, by ending the process, when it has not renewed for
`renew_deadline_s`, which is shorter than the duration: by the time another
replica may take over, the old holder has stopped (or is cut off from the
API, so it cannot start anything either). Writes use the Lease's
resourceVersion, so two candidates never both win.

The whole operator (kopf's handlers, the worker pool, the step API, the
admission webhook, the Flow webhooks) starts only once the Lease is held; a
standby serves only its liveness endpoint. kopf's peering is not used: it
pauses kopf's watches, but the worker pool's timers and the servers would go
on acting, and replicas of equal priority would all freeze.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

LOG = logging.getLogger("millrace.operator")


@dataclass(frozen=True)
class Timing:
    duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_s: float = 2.0

    @classmethod
    def from_duration(cls, duration_s: float) -> Timing:
        """client-go's proportions (15 s, 10 s, 2 s) for another lease duration."""
        return cls(duration_s, duration_s * 2 / 3, max(0.2, duration_s * 2 / 15))


@dataclass(frozen=True)
class Record:
    """What a Lease says, as far as the election cares."""
    holder: str | None
    duration_s: float
    version: str  # resourceVersion: changes with every renewal


def record_of(lease: dict[str, Any]) -> Record:
    spec = lease.get("spec") or {}
    return Record(spec.get("holderIdentity") or None, float(spec.get("leaseDurationSeconds") or 0),
                  str(lease["metadata"]["resourceVersion"]))


def may_take(record: Record, me: str, unchanged_for: float) -> bool:
    """Whether `me` may write itself as holder of a Lease last seen `unchanged_for` seconds ago."""
    return record.holder in (None, me) or unchanged_for >= record.duration_s


def _micro_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    def __init__(self, api: client.CoordinationV1Api, namespace: str, name: str, identity: str, timing: Timing,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api, self.namespace, self.name, self.identity, self.timing = api, namespace, name, identity, timing
        self.clock = clock
        self._seen: tuple[str, float] | None = None  # (resourceVersion, when first seen)
        self._renewed_at: float | None = None
        self._stop = threading.Event()

    def _read(self) -> dict[str, Any]:
        return self.api.api_client.sanitize_for_serialization(self.api.read_namespaced_lease(self.name, self.namespace))

    def _spec(self, previous: Record | None, lease: dict[str, Any] | None) -> dict[str, Any]:
        now = _micro_time()
        old = (lease or {}).get("spec") or {}
        taking = previous is None or previous.holder != self.identity
        return {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.timing.duration_s)),
                "renewTime": now, "acquireTime": now if taking else old.get("acquireTime"),
                "leaseTransitions": int(old.get("leaseTransitions") or 0) + (1 if taking and previous else 0)}

    def try_hold(self) -> bool:
        """One attempt to acquire or renew the Lease; True while this replica holds it."""
        started = self.clock()
        try:
            lease = self._read()
        except ApiException as exc:
            if exc.status != 404:
                raise
            # The client serialises plain dicts; its signatures name only its model classes.
            body: Any = {"metadata": {"name": self.name}, "spec": self._spec(None, None)}
            try:
                self.api.create_namespaced_lease(self.namespace, body)
            except ApiException as created:
                if created.status == 409:
                    return False
                raise
            self._renewed_at = started
            return True
        record = record_of(lease)
        if self._seen is None or self._seen[0] != record.version:
            self._seen = (record.version, started)
        if not may_take(record, self.identity, started - self._seen[1]):
            return False
        replacement: Any = {"metadata": {"name": self.name, "resourceVersion": record.version},
                            "spec": self._spec(record, lease)}
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, replacement)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self._renewed_at = started
        return True

    def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        LOG.info("waiting to lead (Lease %s/%s, as %s)", self.namespace, self.name, self.identity)
        while not self._attempt():
            time.sleep(self.timing.retry_s)
        LOG.info("leading (Lease %s/%s)", self.namespace, self.name)

    def _attempt(self) -> bool:
        try:
            return self.try_hold()
        except Exception as exc:  # the API is unreachable or answers 5xx: try again, as a standby or a leader
            LOG.warning("Lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    def leading(self) -> bool:
        """Whether the last renewal is recent enough to act on."""
        return self._renewed_at is not None and self.clock() - self._renewed_at < self.timing.renew_deadline_s

    def keep(self, lost: Callable[[], None]) -> threading.Thread:
        """Renew in the background; call `lost` once the Lease can no longer be counted on."""
        def renew() -> None:
            while not self._stop.wait(self.timing.retry_s):
                # Safe to wait for the deadline: no one may take over before the longer duration.
                if not self._attempt() and not self.leading():
                    lost()
                    return

        thread = threading.Thread(target=renew, name="lease", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """On a clean stop: free the Lease at once, if this replica still holds it."""
        self._stop.set()
        try:
            lease = self._read()
            if record_of(lease).holder != self.identity:
                return
            spec = {**lease["spec"], "holderIdentity": None, "renewTime": _micro_time()}
            freed: Any = {**lease, "spec": spec}
            self.api.replace_namespaced_lease(self.name, self.namespace, freed)
        except ApiException as exc:  # another replica took it, or it is gone: nothing to free
            LOG.warning("Lease %s/%s not released: %s", self.namespace, self.name, exc.reason)
        except Exception as exc:  # the API unreachable while stopping: the Lease expires on its own
            LOG.warning("Lease %s/%s not released: %s", self.namespace, self.name, exc)


@contextmanager
def standby_liveness(url: str) -> Iterator[None]:
    """Answer the liveness probe while waiting to lead (kopf serves it once the operator runs)."""
    parts = urllib.parse.urlsplit(url)

    class Alive(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path.split("?")[0] == (parts.path or "/") else 404)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port or 80), Alive)
    thread = threading.Thread(target=server.serve_forever, name="standby-liveness", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
