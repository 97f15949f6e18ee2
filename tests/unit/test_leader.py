"""Leader election against an in-memory Lease with the apiserver's resourceVersion rules."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException
from millrace.cluster.leader import Elector, Record, Timing, may_take

TIMING = Timing.from_duration(15)


class FakeLeases:
    """One namespace's Leases: create answers 409 when taken, replace 409 on a stale resourceVersion."""

    api_client = SimpleNamespace(sanitize_for_serialization=copy.deepcopy)

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0

    def _store(self, body: dict[str, Any]) -> None:
        self.version += 1
        self.leases[body["metadata"]["name"]] = {**copy.deepcopy(body), "metadata": {
            "name": body["metadata"]["name"], "resourceVersion": str(self.version)}}

    def read_namespaced_lease(self, name: str, namespace: str) -> dict[str, Any]:
        if name not in self.leases:
            raise ApiException(status=404)
        return self.leases[name]

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any]) -> None:
        if body["metadata"]["name"] in self.leases:
            raise ApiException(status=409)
        self._store(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        if body["metadata"]["resourceVersion"] != self.leases[name]["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        self._store(body)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pair() -> tuple[FakeLeases, Clock, Elector, Elector]:
    api, clock = FakeLeases(), Clock()
    a = Elector(api, "ns", "millrace-leader", "a", TIMING, clock)  # type: ignore[arg-type]
    b = Elector(api, "ns", "millrace-leader", "b", TIMING, clock)  # type: ignore[arg-type]
    return api, clock, a, b


def test_a_lease_is_taken_when_free_own_or_silent_for_its_duration() -> None:
    held = Record("a", 15, "7")
    assert may_take(Record(None, 15, "7"), "b", 0)
    assert may_take(held, "a", 0)
    assert not may_take(held, "b", 14.9)
    assert may_take(held, "b", 15)


def test_the_first_candidate_leads_and_the_second_waits_while_it_renews() -> None:
    api, clock, a, b = _pair()
    assert a.try_hold() and a.leading()
    assert not b.try_hold()
    for _ in range(20):  # a renews every 2 s: the Lease never stays unchanged for 15 s
        clock.now += TIMING.retry_s
        assert a.try_hold()
        assert not b.try_hold()
    assert api.leases["millrace-leader"]["spec"]["holderIdentity"] == "a"


def test_a_silent_leader_is_replaced_only_after_the_lease_duration_and_stopped_before() -> None:
    api, clock, a, b = _pair()
    a.try_hold()
    assert not b.try_hold()  # b sees the record now, and times it from here
    clock.now += TIMING.renew_deadline_s
    assert not a.leading(), "a stops acting before anyone may take over"
    assert not b.try_hold()
    clock.now += TIMING.duration_s - TIMING.renew_deadline_s
    assert b.try_hold() and b.leading()
    spec = api.leases["millrace-leader"]["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
    assert not a.try_hold(), "the old leader does not take it back"


def test_a_released_lease_is_taken_at_once_and_a_restarted_pod_keeps_its_own() -> None:
    api, clock, a, b = _pair()
    a.try_hold()
    a.release()
    assert api.leases["millrace-leader"]["spec"]["holderIdentity"] is None
    assert b.try_hold()
    again = Elector(api, "ns", "millrace-leader", "b", TIMING, clock)  # type: ignore[arg-type]
    assert again.try_hold(), "the same pod, its container restarted"


def test_two_candidates_writing_after_the_same_read_do_not_both_win() -> None:
    api, clock, a, b = _pair()
    a.try_hold()
    a.release()
    free = copy.deepcopy(api.leases["millrace-leader"])
    assert b.try_hold()
    c = Elector(api, "ns", "millrace-leader", "c", TIMING, clock)  # type: ignore[arg-type]
    api.read_namespaced_lease = lambda *_: free  # type: ignore[method-assign]  # c read before b wrote
    assert not c.try_hold()
    assert api.leases["millrace-leader"]["spec"]["holderIdentity"] == "b"
