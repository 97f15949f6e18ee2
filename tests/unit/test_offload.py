"""What of a loop's state the cluster keeps in ConfigMaps owned by the run (cluster/offload.py)."""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import pytest

from millrace.cluster import names
from millrace.cluster.kube import KubeApi
from millrace.cluster.offload import (PART_LIMIT, STATUS_LIMIT, Offload, Unkeepable, check_status_size, size)
from millrace.model.run import LoopProgress, StepState

RUN = {"apiVersion": "millrace.dev/v1alpha1", "kind": "FlowRun",
       "metadata": {"name": "daily", "namespace": "flows", "uid": "uid-1"}}


class ConfigMaps:
    """The two calls offload makes, over a dict of ConfigMaps by name."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def create_owned(self, obj: dict[str, Any], what: str, owner_uid: str, path: str | None = None) -> str | None:
        name = obj["metadata"]["name"]
        existing = self.objects.setdefault(name, copy.deepcopy(obj))
        return None if names.owned(existing, owner_uid, path) else f"ConfigMap {name} is not {what}'s"

    def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get(name))


def _offload(kube: ConfigMaps) -> Offload:
    return Offload(cast(KubeApi, kube), {})


def _loop_state() -> StepState:
    big = "x" * 2000
    return StepState(phase="Running", type="forloopflow", attempts=1, items=[f"{big}{i}" for i in range(300)],
                     loop=LoopProgress(chunks={0: [f"{big}{i}" for i in range(100)], 1: list(range(100))},
                                       pending={200: f"{big}200", 201: 201}, finished=202, active=[202]))


def test_large_loop_values_leave_the_status_and_come_back_equal_after_a_restart() -> None:
    kube = ConfigMaps()
    st = _loop_state()
    stored = _offload(kube).store(RUN, "l", st, secrets=[])
    assert stored.items is None and stored.items_ref
    assert stored.loop is not None
    assert set(stored.loop.chunks) == {1} and set(stored.loop.chunk_refs) == {0}  # the small chunk stays inline
    assert stored.loop.pending == {201: 201} and set(stored.loop.pending_refs) == {200}
    assert size(stored.model_dump(mode="json")) < 4096
    assert all(cm["metadata"]["labels"][names.LABEL_KIND] == "loop-values" for cm in kube.objects.values())
    # A new operator process: nothing cached, everything read from the ConfigMaps.
    loaded = _offload(kube).load(RUN, {"l": stored})["l"]
    assert loaded.items == st.items
    assert loaded.loop is not None and st.loop is not None
    assert loaded.loop.chunks == st.loop.chunks and loaded.loop.pending == st.loop.pending


def test_values_are_written_once_and_small_states_pay_nothing() -> None:
    kube = ConfigMaps()
    offload = _offload(kube)
    stored = offload.store(RUN, "l", _loop_state(), secrets=[])
    written = len(kube.objects)
    again = offload.store(RUN, "l", offload.load(RUN, {"l": stored})["l"], secrets=[])
    assert again == stored and len(kube.objects) == written
    small = StepState(phase="Running", type="forloopflow", items=[1, 2, 3], loop=LoopProgress(pending={0: 1}))
    assert offload.store(RUN, "s", small, secrets=[]) is small
    assert len(kube.objects) == written


def test_a_large_container_result_is_kept_whole_or_in_parts() -> None:
    kube = ConfigMaps()
    as_list = StepState(phase="Succeeded", type="forloopflow", attempts=1, result=["y" * 300_000] * 3)
    as_value = StepState(phase="Succeeded", type="branchone", attempts=1, result={"text": "z" * 10_000})
    stored = {path: _offload(kube).store(RUN, path, st, secrets=[]) for path, st in (("l", as_list), ("b", as_value))}
    assert stored["l"].result is None and len(stored["l"].result_parts or []) == 3  # 900 KB in parts of 512 KiB
    assert stored["b"].result is None and len(stored["b"].result_parts or []) == 1
    loaded = _offload(kube).load(RUN, stored)
    assert loaded["l"].result == as_list.result and loaded["b"].result == as_value.result
    # A script step's large result is its report's business, not offload's.
    script = StepState(phase="Succeeded", type="rawscript", attempts=1, result="s" * 10_000)
    assert _offload(kube).store(RUN, "s", script, secrets=[]) is script


def test_an_ended_loop_drops_its_references() -> None:
    kube = ConfigMaps()
    stored = _offload(kube).store(RUN, "l", _loop_state(), secrets=[])
    ended = stored.model_copy(update={"items": None, "phase": "Succeeded",
                                      "loop": LoopProgress(finished=300)})
    again = _offload(kube).store(RUN, "l", ended, secrets=[])
    assert again.items_ref is None and again.loop is not None and not again.loop.chunk_refs


def test_secret_values_are_masked_in_the_config_maps() -> None:
    kube = ConfigMaps()
    st = StepState(phase="Running", type="forloopflow", items=[f"token-hunter2-{i}" + "." * 100 for i in range(100)])
    _offload(kube).store(RUN, "l", st, secrets=["hunter2"])
    assert kube.objects and all("hunter2" not in json.dumps(cm) for cm in kube.objects.values())


def test_a_value_too_large_for_any_object_fails_naming_the_step() -> None:
    st = StepState(phase="Running", type="forloopflow", items=["v" * (PART_LIMIT + 1)])
    with pytest.raises(Unkeepable) as caught:
        _offload(ConfigMaps()).store(RUN, "outer/l", st, secrets=[])
    assert caught.value.error.name == "ValueTooLarge" and caught.value.error.step_id == "outer/l"
    assert "outer/l" in caught.value.error.message


def test_another_object_of_the_same_name_is_not_adopted() -> None:
    kube = ConfigMaps()
    stored = _offload(kube).store(RUN, "l", _loop_state(), secrets=[])
    other = {**RUN, "metadata": {**RUN["metadata"], "uid": "uid-2"}}
    with pytest.raises(Unkeepable) as caught:
        _offload(kube).store(other, "l", _loop_state(), secrets=[])
    assert caught.value.error.name == "ForeignObject"
    with pytest.raises(Unkeepable) as unreadable:
        _offload(kube).load(other, {"l": stored})
    assert unreadable.value.error.name == "UnreadableRecord"


def test_a_status_over_the_hard_limit_is_refused_before_the_apiserver_sees_it() -> None:
    check_status_size({"steps": {}}, "daily")
    with pytest.raises(Unkeepable) as caught:
        check_status_size({"result": "r" * STATUS_LIMIT}, "daily")
    assert caught.value.error.name == "StatusTooLarge" and "FlowRun daily" in caught.value.error.message


def test_sealed_chunks_are_measured_once_and_stored_as_without_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from millrace.cluster import offload as module

    measured: list[Any] = []

    def counting(value: Any) -> int:
        measured.append(value)
        return size(value)

    monkeypatch.setattr(module, "size", counting)
    big = "x" * 2000
    chunks: dict[int, list[Any]] = {c: list(range(c * 100, c * 100 + 100)) for c in range(30)}
    chunks[30] = [f"{big}{i}" for i in range(100)]  # one chunk too large to stay inline
    st = StepState(phase="Running", type="forloopflow", attempts=1, items=list(range(10)),
                   loop=LoopProgress(chunks=chunks, pending={3100: 1}, finished=3101, active=[3101]))
    kube = ConfigMaps()
    cached = Offload(cast(KubeApi, kube), {}, {})
    first = cached.store(RUN, "l", st, secrets=[])
    sealed = [v for v in measured if isinstance(v, list) and len(v) == 100]
    assert len(sealed) == 31
    for _ in range(3):  # later passes: the state comes back from the status as new objects
        measured.clear()
        recorded = StepState.model_validate(first.model_dump(mode="json"))
        again = cached.store(RUN, "l", cached.load(RUN, {"l": recorded})["l"], secrets=[])
        assert not [v for v in measured if isinstance(v, list) and len(v) == 100]
        assert again == first
    assert _offload(kube).store(RUN, "l", st, secrets=[]) == first  # no cache: the same state
    assert first.loop is not None and set(first.loop.chunk_refs) == {30} and len(first.loop.chunks) == 30
    cached.forget(RUN["metadata"]["uid"], {"l": first})
    measured.clear()
    cached.store(RUN, "l", st, secrets=[])
    assert len([v for v in measured if isinstance(v, list) and len(v) == 100]) == 31  # forgotten: measured anew
