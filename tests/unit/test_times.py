"""The time codec: epoch seconds in the engine, RFC 3339 in FlowRun.status, both read."""

from __future__ import annotations

import random

import pytest

from millrace.cluster.status import wire_times
from millrace.model.resources import FlowRunStatus
from millrace.model.run import RunStatus, StepState
from millrace.model.times import format_time, parse_time, time_fields

T = 1796243894.123456  # 2026-12-02T20:38:14.123456Z


def test_format_is_rfc3339_utc_to_the_microsecond_or_the_second() -> None:
    assert format_time(T) == "2026-12-02T20:38:14.123456Z"
    assert format_time(T, precise=False) == "2026-12-02T20:38:14Z"
    assert format_time(0) == "1970-01-01T00:00:00.000000Z"


def test_parse_reads_rfc3339_with_any_offset_and_the_epoch_seconds_of_old_statuses() -> None:
    assert parse_time("2026-12-02T20:38:14.123456Z") == T
    assert parse_time("2026-12-02T21:38:14.123456+01:00") == T
    assert parse_time("2026-12-02T20:38:14Z") == 1796243894.0
    assert parse_time(T) == T and parse_time(12) == 12.0 and parse_time("1234.5") == 1234.5
    assert parse_time(None) is None


@pytest.mark.parametrize("bad", ["yesterday", "2026-12-02T20:38:14", ""])
def test_parse_refuses_what_is_no_time_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time(bad)


def test_round_trip_is_exact_to_the_microsecond_and_stable() -> None:
    rng = random.Random(7)
    for _ in range(10_000):
        epoch = rng.uniform(0, 4e9)
        text = format_time(epoch)
        back = parse_time(text)
        assert back is not None and abs(back - epoch) <= 1e-6  # the nearest microsecond, as near as a float gets
        assert format_time(back) == text and parse_time(format_time(back)) == back
        micro = round(epoch, 6)
        assert parse_time(format_time(micro)) == micro


def test_every_time_of_the_run_state_is_a_time_field() -> None:
    assert time_fields(RunStatus) == {"startedAt", "finishedAt"}
    assert time_fields(StepState) == {"startedAt", "finishedAt", "notBefore", "sleepUntil", "awaitingSince"}


def _status(**steps: StepState) -> FlowRunStatus:
    return FlowRunStatus(phase="Succeeded", started_at=T, finished_at=T + 2.5, steps=steps)


def test_wire_times_writes_rfc3339_and_the_model_reads_it_back_exactly() -> None:
    step = StepState(phase="Running", type="rawscript", attempts=2, started_at=T, not_before=T + 1.000001,
                     sleep_until=T + 3, awaiting_since=T - 4, timeout_s=30.0)
    dumped = _status(a=step).model_dump(mode="json", by_alias=True, exclude_none=True)
    wire = wire_times(dumped)
    assert wire["startedAt"] == "2026-12-02T20:38:14.123456Z" and wire["finishedAt"] == "2026-12-02T20:38:16.623456Z"
    assert wire["steps"]["a"]["notBefore"] == "2026-12-02T20:38:15.123457Z"
    assert wire["steps"]["a"]["timeoutS"] == 30.0  # a duration, not a time
    again = FlowRunStatus.model_validate(wire)
    assert again.started_at == T and again.steps["a"].not_before == T + 1.000001
    assert wire_times(again.model_dump(mode="json", by_alias=True, exclude_none=True)) == wire


def test_a_status_with_epoch_floats_is_still_read() -> None:
    old = {"phase": "Running", "startedAt": T, "steps": {"a": {"phase": "Running", "startedAt": T, "notBefore": 5.5}}}
    status = FlowRunStatus.model_validate(old)
    assert status.started_at == T and status.steps["a"].not_before == 5.5
