"""What the operator's watches last showed: FlowRuns and run records, kept in memory.

A pass reads its run and its records (reports, resume requests) from here
instead of asking the apiserver each time. The watches feed it, and so do
the operator's own writes (a status it wrote, a report its step API made),
which the watches would only show a moment later. What it holds may be a
little behind, never wrong in a way that matters: a stale FlowRun makes the
status write conflict (the pass then reads the run from the apiserver), a
report not seen yet is looked up directly before a step is said to have
ended without one, and a resume request not seen yet comes with its watch
event, which queues the run again.
"""

from __future__ import annotations

import threading
from typing import Any

from . import names

RunKey = tuple[str, str]  # (namespace, name)


def _version(obj: dict[str, Any]) -> int | None:
    value = obj.get("metadata", {}).get("resourceVersion")
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _newer(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Whether `new` is a later state than `old` (resource versions compare when both are numbers, as etcd's are)."""
    if old is None:
        return True
    new_version, old_version = _version(new), _version(old)
    return new_version is None or old_version is None or new_version > old_version


class Watched:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[RunKey, dict[str, Any]] = {}
        self._records: dict[RunKey, dict[str, dict[str, Any]]] = {}  # (namespace, run label) -> name -> ConfigMap
        self._coming: set[tuple[str, str]] = set()  # (namespace, name) of records the step API is creating

    # --- FlowRuns -----------------------------------------------------------------------

    def put_run(self, obj: dict[str, Any]) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            if _newer(obj, self._runs.get(key)):
                self._runs[key] = obj

    def run(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._runs.get((namespace, name))

    def drop_run(self, namespace: str, name: str) -> None:
        """Forget what a run looked like (found stale): the next reader asks the apiserver."""
        with self._lock:
            self._runs.pop((namespace, name), None)

    def forget_run(self, namespace: str, name: str) -> None:
        """Forget a run and its records: it was deleted or has finished."""
        with self._lock:
            self._runs.pop((namespace, name), None)
            self._records.pop((namespace, names.label_value(name)), None)

    # --- run records (report and resume ConfigMaps) -----------------------------------

    def put_record(self, cm: dict[str, Any]) -> bool:
        """Keep a record; True when it is news. Records are made once and never changed, so a
        name seen before is no news (the watch showing a report the step API kept already), nor
        is one the step API is creating (its watch event may come before the step API keeps it)."""
        meta = cm["metadata"]
        key = (meta["namespace"], (meta.get("labels") or {}).get(names.LABEL_RUN, ""))
        with self._lock:
            records = self._records.setdefault(key, {})
            old = records.get(meta["name"])
            if _newer(cm, old):
                records[meta["name"]] = cm
            return old is None and (meta["namespace"], meta["name"]) not in self._coming

    def coming(self, cm: dict[str, Any]) -> None:
        """The step API is about to create this record, and tells the run itself once it is made."""
        with self._lock:
            self._coming.add((cm["metadata"]["namespace"], cm["metadata"]["name"]))

    def made(self, cm: dict[str, Any], created: bool) -> None:
        """The step API's create of a `coming` record has ended: the record is kept if it was created."""
        if created:
            self.put_record(cm)
        with self._lock:
            self._coming.discard((cm["metadata"]["namespace"], cm["metadata"]["name"]))

    def drop_record(self, cm: dict[str, Any]) -> None:
        meta = cm["metadata"]
        with self._lock:
            self._records.get((meta["namespace"], (meta.get("labels") or {}).get(names.LABEL_RUN, "")), {}).pop(meta["name"], None)

    def records(self, namespace: str, run: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._records.get((namespace, names.label_value(run)), {}))

    def has_record(self, namespace: str, run: str, name: str) -> bool:
        with self._lock:
            return name in self._records.get((namespace, names.label_value(run)), {})
