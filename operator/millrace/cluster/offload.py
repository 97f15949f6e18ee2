"""What of a run's state is kept in ConfigMaps owned by the run, so that `FlowRun.status` stays small.

A loop records values that never change once written: its iterator
(`StepState.items`), its sealed result chunks (`LoopProgress.chunks`) and
each finished iteration's result until its chunk is sealed
(`LoopProgress.pending`); a container (loop, branches) ends with its result.
When such a value's JSON is over its inline limit, the status names
ConfigMaps holding it instead (`items_ref`, `chunk_refs`, `pending_refs`,
`result_parts`; a script step's or an inner flow's large result is in its
report, `result_ref`, see the reconciler): a list split into parts of at most PART_LIMIT bytes, one
ConfigMap per part, written masked as the status is. The planner never sees
a reference: the reconciler puts the values back before planning (`load`)
and takes them out before writing (`store`). A value is read once per
operator process, and whether a sealed chunk fits inline is measured once:
what never changes needs no second read, so a pass does not cost more as
the loop's finished chunks add up.

Hard limits, so that the apiserver never has to refuse: a status document
over STATUS_LIMIT fails the run (StatusTooLarge), and a single list element
over PART_LIMIT cannot be kept (ValueTooLarge).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from ..model.run import ErrorInfo, LoopProgress, StepState
from ..runtime.redact import redact_json
from . import names
from .faults import refusal
from .kube import KubeApi

KIND_LOOP_VALUES = "loop-values"
VALUES_KEY = "values"
WHOLE_KEY = "whole"  # "true": the values are [the value], a value that is not a list
ITEMS_INLINE_LIMIT = 4096  # bytes of JSON: an iterator, or a sealed chunk of results, kept in the status
PENDING_INLINE_LIMIT = 1024  # one iteration's result: up to a chunk and a parallel width of them wait inline
PART_LIMIT = 512 * 1024  # bytes of JSON per ConfigMap, well under the 1 MiB an object may hold
STATUS_LIMIT = 1024 * 1024  # bytes of JSON of a status document, under etcd's 1.5 MiB request limit


class Unkeepable(Exception):
    """A value the run's records cannot hold: the run fails with `error`."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


def size(value: Any) -> int:
    return len(json.dumps(value, default=str))


def check_status_size(document: Any, run: str) -> None:
    found = size(document)
    if found > STATUS_LIMIT:
        raise Unkeepable(ErrorInfo(
            name="StatusTooLarge",
            message=f"the status of FlowRun {run} would be {found} bytes of JSON, over millrace's limit of "
                    f"{STATUS_LIMIT} bytes (etcd refuses objects over 1.5 MiB): keep large values in the shared "
                    f"directory or in results smaller than 4 KiB"))


# Whether each sealed chunk of a run's loops fits inline, by run uid, then (loop path, loop attempt, chunk number).
InlineChunks = dict[str, dict[tuple[str, int, int], bool]]


class Offload:
    def __init__(self, kube: KubeApi, values: dict[str, Any], inline_chunks: InlineChunks | None = None) -> None:
        self.kube = kube
        # ConfigMap name -> (the real values of that part, whether they are [one value that is not a list]),
        # shared by the workers.
        self._values = values
        # Whether a sealed chunk fits inline, measured once: a sealed chunk never changes, and
        # measuring every inline one on every pass would make a step's cost grow with the loop.
        self._inline_chunks: InlineChunks = {} if inline_chunks is None else inline_chunks

    # --- back into the state, before planning -------------------------------------------

    def load(self, run: dict[str, Any], steps: dict[str, StepState]) -> dict[str, StepState]:
        """`steps` with every offloaded value back in place (copies of the steps that had any)."""
        out = dict(steps)
        for path, st in steps.items():
            update: dict[str, Any] = {}
            if st.items_ref and st.items is None:
                update["items"] = self._read(run, path, st.items_ref)
            if st.result_parts and st.result is None:
                update["result"] = self._read_result(run, path, st.result_parts)
            p = st.loop
            if p is not None and (p.chunk_refs or p.pending_refs):
                chunks = {**p.chunks, **{c: self._read(run, path, refs) for c, refs in p.chunk_refs.items()}}
                pending = {**p.pending, **{i: self._read(run, path, refs)[0] for i, refs in p.pending_refs.items()}}
                update["loop"] = p.model_copy(update={"chunks": chunks, "pending": pending})
            if update:
                out[path] = st.model_copy(update=update)
        return out

    def _read_result(self, run: dict[str, Any], path: str, refs: list[str]) -> Any:
        values = self._read(run, path, refs)
        return values[0] if self._values[refs[0]][1] else values

    def _read(self, run: dict[str, Any], path: str, refs: list[str]) -> list[Any]:
        out: list[Any] = []
        for name in refs:
            if name not in self._values:
                cm = self.kube.get_config_map(run["metadata"]["namespace"], name)
                if cm is None or not names.owned(cm, run["metadata"]["uid"], path):
                    raise Unkeepable(ErrorInfo(name="UnreadableRecord", step_id=path, message=(
                        f"ConfigMap {name}, which keeps part of step {path}'s record, is missing or not this run's")))
                data = cm.get("data") or {}
                self._values[name] = (json.loads(data.get(VALUES_KEY) or "[]"), data.get(WHOLE_KEY) == "true")
            out.extend(self._values[name][0])
        return out

    # --- out of the state, before writing ----------------------------------------------------

    def store(self, run: dict[str, Any], path: str, st: StepState, secrets: Sequence[str]) -> StepState:
        """`st` as the status holds it: large values replaced by the names of ConfigMaps holding them.

        Creates the ConfigMaps first, so a status never names one that is not there."""
        update: dict[str, Any] = {}
        if st.items is None:
            if st.items_ref:
                update["items_ref"] = None  # the loop ended: its iterator is evaluated again if it runs again
        elif st.items_ref or size(st.items) > ITEMS_INLINE_LIMIT:
            update["items_ref"] = st.items_ref or self._write(run, path, (st.attempts, "items"), st.items, secrets)
            update["items"] = None
        if st.result is None:
            if st.result_parts:
                update["result_parts"] = None
        elif not st.runs_script and st.type != "flow" and (st.result_parts or size(st.result) > ITEMS_INLINE_LIMIT):
            whole = not isinstance(st.result, list)
            update["result_parts"] = st.result_parts or self._write(
                run, path, (st.attempts, "result"), [st.result] if whole else st.result, secrets, whole=whole)
            update["result"] = None
        if st.loop is not None and (loop := self._store_loop(run, path, st, st.loop, secrets)) is not st.loop:
            update["loop"] = loop
        return st.model_copy(update=update) if update else st

    def _store_loop(self, run: dict[str, Any], path: str, st: StepState, p: LoopProgress,
                    secrets: Sequence[str]) -> LoopProgress:
        chunk_refs: dict[int, list[str]] = {}
        chunks: dict[int, list[Any]] = {}
        for chunk, values in p.chunks.items():
            if chunk in p.chunk_refs or not self._fits(run, path, st, chunk, values):
                chunk_refs[chunk] = p.chunk_refs.get(chunk) or self._write(run, path, (st.attempts, "chunk", chunk),
                                                                           values, secrets)
            else:
                chunks[chunk] = values
        pending_refs: dict[int, list[str]] = {}
        pending: dict[int, Any] = {}
        for index, value in p.pending.items():
            if index in p.pending_refs or size(value) > PENDING_INLINE_LIMIT:
                pending_refs[index] = p.pending_refs.get(index) or self._write(
                    run, path, (st.attempts, "iteration", index), [value], secrets)
            else:
                pending[index] = value
        if not chunk_refs and not pending_refs and not p.chunk_refs and not p.pending_refs:
            return p  # all inline, as it was
        return p.model_copy(update={"chunks": chunks, "chunk_refs": chunk_refs, "pending": pending,
                                    "pending_refs": pending_refs})

    def _fits(self, run: dict[str, Any], path: str, st: StepState, chunk: int, values: list[Any]) -> bool:
        known = self._inline_chunks.setdefault(run["metadata"]["uid"], {})
        fits = known.get((path, st.attempts, chunk))
        if fits is None:
            fits = known[(path, st.attempts, chunk)] = size(values) <= ITEMS_INLINE_LIMIT
        return fits

    def _write(self, run: dict[str, Any], path: str, identity: tuple[Any, ...], values: list[Any],
               secrets: Sequence[str], whole: bool = False) -> list[str]:
        meta = run["metadata"]
        refs = []
        for number, part in enumerate(_parts(values, path)):
            name = names.identity_name(meta["name"], path, *identity, number)
            body = {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": meta["namespace"],
                             "labels": {names.LABEL_RUN: names.label_value(meta["name"]),
                                        names.LABEL_KIND: KIND_LOOP_VALUES},
                             "annotations": {names.ANNOTATION_STEP_PATH: path},
                             "ownerReferences": [{"apiVersion": run["apiVersion"], "kind": run["kind"],
                                                  "name": meta["name"], "uid": meta["uid"], "controller": True}]},
                "data": {VALUES_KEY: json.dumps(redact_json(part, secrets), default=str),
                         **({WHOLE_KEY: "true"} if whole else {})},
            }
            try:
                foreign = self.kube.create_owned(body, f"run {meta['name']}'s record of step {path}", meta["uid"], path)
            except Exception as exc:
                refused = refusal(exc, f"ConfigMap {name}")
                if refused is None:
                    raise
                raise Unkeepable(ErrorInfo(name=refused.name, message=refused.message, step_id=path)) from exc
            if foreign is not None:
                raise Unkeepable(ErrorInfo(name="ForeignObject", message=foreign, step_id=path))
            self._values[name] = (part, whole)
            refs.append(name)
        return refs

    def forget(self, run_uid: str, steps: dict[str, StepState]) -> None:
        """A finished run's values leave this process's memory."""
        self._inline_chunks.pop(run_uid, None)
        for st in steps.values():
            refs = [*(st.items_ref or []), *(st.result_parts or [])]
            if st.loop is not None:
                refs += [name for group in (*st.loop.chunk_refs.values(), *st.loop.pending_refs.values())
                         for name in group]
            for name in refs:
                self._values.pop(name, None)


def _parts(values: list[Any], path: str) -> Iterator[list[Any]]:
    """`values` in consecutive slices of at most PART_LIMIT bytes of JSON each."""
    part: list[Any] = []
    used = 2
    for value in values:
        found = size(value) + 1
        if found > PART_LIMIT:
            raise Unkeepable(ErrorInfo(name="ValueTooLarge", step_id=path, message=(
                f"a value of step {path} is {found} bytes of JSON: millrace keeps at most {PART_LIMIT} bytes "
                f"per iterator item or iteration result (write larger data to the shared directory)")))
        if part and used + found > PART_LIMIT:
            yield part
            part, used = [], 2
        part.append(value)
        used += found
    if part or not values:
        yield part
