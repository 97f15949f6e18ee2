"""Schedules: cron forms, timezones with DST, and CronJob's rules for what a schedule starts."""

from __future__ import annotations

import datetime as dt

import pytest

from millrace.schedule.cron import CronError, parse_cron
from millrace.schedule.plan import ScheduledRun, SchedulePolicy, decide, run_name

UTC = dt.timezone.utc


def at(text: str, zone: str = "UTC") -> float:
    cron = parse_cron("* * * * *", zone)
    return dt.datetime.fromisoformat(text).replace(tzinfo=cron.zone).timestamp()


def local(epoch: float, zone: str) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=parse_cron("* * * * *", zone).zone).isoformat()


def fires(expr: str, start: str, count: int, zone: str = "UTC") -> list[str]:
    cron = parse_cron(expr, zone)
    t, out = at(start, zone), []
    for _ in range(count):
        t = cron.next_after(t)
        out.append(local(t, zone))
    return out


# --- cron forms ---------------------------------------------------------------


def test_five_fields_are_minute_hour_day_month_weekday() -> None:
    assert fires("15 10 * * 1", "2026-12-02T00:00:00", 2) == ["2026-12-07T10:15:00+00:00", "2026-12-14T10:15:00+00:00"]


def test_six_fields_put_seconds_first_as_windmill_does() -> None:
    assert fires("30 0 12 * * *", "2026-12-02T00:00:00", 1) == ["2026-12-02T12:00:30+00:00"]
    assert fires("*/20 * * * * *", "2026-12-02T00:00:00", 3) == [
        "2026-12-02T00:00:20+00:00", "2026-12-02T00:00:40+00:00", "2026-12-02T00:01:00+00:00"]


@pytest.mark.parametrize(("shorthand", "first"), [
    ("@hourly", "2026-12-02T01:00:00+00:00"),
    ("@daily", "2026-12-03T00:00:00+00:00"),
    ("@midnight", "2026-12-03T00:00:00+00:00"),
    ("@weekly", "2026-12-06T00:00:00+00:00"),
    ("@monthly", "2027-01-01T00:00:00+00:00"),
    ("@yearly", "2027-01-01T00:00:00+00:00"),
    ("@annually", "2027-01-01T00:00:00+00:00"),
])
def test_shorthands(shorthand: str, first: str) -> None:
    assert fires(shorthand, "2026-12-02T00:00:00", 1) == [first]


@pytest.mark.parametrize(("expr", "zone", "field", "says"), [
    ("61 * * * *", "UTC", "cron", "not a valid cron expression"),
    ("* * *", "UTC", "cron", "has 3 fields"),
    ("@often", "UTC", "cron", "unknown shorthand"),
    ("* * * * *", "Mars/Olympus", "timezone", "not an IANA timezone"),
])
def test_bad_expressions_and_timezones_name_the_field(expr: str, zone: str, field: str, says: str) -> None:
    with pytest.raises(CronError) as info:
        parse_cron(expr, zone)
    assert info.value.field == field and says in str(info.value)


def test_times_are_wall_clock_times_of_the_timezone_across_dst() -> None:
    # Europe/Berlin moves from UTC+1 to UTC+2 on 2026-03-29 and back on 2026-10-25.
    assert fires("0 9 * * *", "2026-03-28T12:00:00", 2, "Europe/Berlin") == [
        "2026-03-29T09:00:00+02:00", "2026-03-30T09:00:00+02:00"]
    assert fires("0 9 * * *", "2026-10-24T12:00:00", 2, "Europe/Berlin") == [
        "2026-10-25T09:00:00+01:00", "2026-10-26T09:00:00+01:00"]


def test_a_time_the_spring_change_skips_fires_right_after_the_gap() -> None:
    assert fires("30 2 * * *", "2026-03-28T12:00:00", 2, "Europe/Berlin") == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_a_time_the_autumn_change_repeats_fires_once() -> None:
    got = fires("30 2 * * *", "2026-10-24T12:00:00", 2, "Europe/Berlin")
    assert len({g[:10] for g in got}) == 2 and got[1].startswith("2026-10-26T02:30")


# --- what a schedule starts ---------------------------------------------------------


def policy(expr: str = "0 * * * *", **kw: object) -> SchedulePolicy:
    return SchedulePolicy(cron=parse_cron(expr), **kw)  # type: ignore[arg-type]


def test_nothing_is_due_before_the_first_fire_time() -> None:
    d = decide("f", policy(), since=at("2026-12-02T10:05:00"), last_schedule_time=None,
               now=at("2026-12-02T10:59:59"), runs=[])
    assert d.start is None and d.next_schedule_time == at("2026-12-02T11:00:00")


def test_a_due_time_starts_one_run_named_after_it() -> None:
    d = decide("report", policy(), since=at("2026-12-02T10:05:00"), last_schedule_time=None,
               now=at("2026-12-02T11:00:02"), runs=[])
    assert d.start == at("2026-12-02T11:00:00")
    assert d.run_name == f"report-{int(at('2026-12-02T11:00:00'))}"
    assert d.last_schedule_time == d.start and d.next_schedule_time == at("2026-12-02T12:00:00")


def test_after_downtime_only_the_most_recent_missed_time_starts() -> None:
    # CronJob: getMostRecentScheduleTime; never a burst of catch-up runs.
    d = decide("f", policy(), since=at("2026-12-02T00:00:00"), last_schedule_time=at("2026-12-02T01:00:00"),
               now=at("2026-12-02T07:30:00"), runs=[])
    assert d.start == at("2026-12-02T07:00:00")


def test_a_missed_time_past_the_starting_deadline_does_not_start() -> None:
    p = policy(starting_deadline_seconds=600)
    late = decide("f", p, since=at("2026-12-02T00:00:00"), last_schedule_time=at("2026-12-02T06:00:00"),
                  now=at("2026-12-02T07:30:00"), runs=[])
    assert late.start is None and late.last_schedule_time == at("2026-12-02T06:00:00")
    in_time = decide("f", p, since=at("2026-12-02T00:00:00"), last_schedule_time=at("2026-12-02T06:00:00"),
                     now=at("2026-12-02T07:09:00"), runs=[])
    assert in_time.start == at("2026-12-02T07:00:00")


def test_a_time_already_started_is_not_started_again() -> None:
    due = at("2026-12-02T11:00:00")
    runs = [ScheduledRun(run_name("f", due), due, "Active")]
    d = decide("f", policy(), since=at("2026-12-02T10:00:00"), last_schedule_time=None, now=due + 5, runs=runs)
    assert d.start is None and d.last_schedule_time == due
    again = decide("f", policy(), since=at("2026-12-02T10:00:00"), last_schedule_time=due, now=due + 50, runs=runs)
    assert again.start is None


def test_forbid_holds_a_due_time_back_while_a_run_is_active_and_starts_it_after() -> None:
    p = policy(concurrency_policy="Forbid")
    busy = [ScheduledRun("f-old", at("2026-12-02T10:00:00"), "Active")]
    held = decide("f", p, since=at("2026-12-02T09:00:00"), last_schedule_time=at("2026-12-02T10:00:00"),
                  now=at("2026-12-02T11:00:01"), runs=busy)
    assert held.start is None and held.held_back and held.last_schedule_time == at("2026-12-02T10:00:00")
    done = [ScheduledRun("f-old", at("2026-12-02T10:00:00"), "Succeeded")]
    later = decide("f", p, since=at("2026-12-02T09:00:00"), last_schedule_time=at("2026-12-02T10:00:00"),
                   now=at("2026-12-02T11:20:00"), runs=done)
    assert later.start == at("2026-12-02T11:00:00")


def test_allow_starts_beside_active_runs_and_replace_cancels_them() -> None:
    busy = [ScheduledRun("f-old", at("2026-12-02T10:00:00"), "Active")]
    args = dict(since=at("2026-12-02T09:00:00"), last_schedule_time=at("2026-12-02T10:00:00"),
                now=at("2026-12-02T11:00:01"), runs=busy)
    allow = decide("f", policy(), **args)  # type: ignore[arg-type]
    assert allow.start and allow.cancel == ()
    replace = decide("f", policy(concurrency_policy="Replace"), **args)  # type: ignore[arg-type]
    assert replace.start and replace.cancel == ("f-old",)


def test_a_suspended_schedule_starts_nothing_and_has_no_next_time() -> None:
    d = decide("f", policy(suspend=True), since=at("2026-12-02T09:00:00"), last_schedule_time=None,
               now=at("2026-12-02T11:00:01"), runs=[])
    assert d.start is None and d.next_schedule_time is None


def test_history_limits_delete_the_oldest_finished_runs() -> None:
    runs = [ScheduledRun(f"ok-{i}", float(i), "Succeeded") for i in range(5)]
    runs += [ScheduledRun(f"bad-{i}", float(i), "Failed") for i in range(3)]
    runs += [ScheduledRun("busy", 0.0, "Active")]
    d = decide("f", policy(successful_runs_history_limit=2, failed_runs_history_limit=0),
               since=0.0, last_schedule_time=None, now=1.0, runs=runs)
    assert d.delete == ("ok-0", "ok-1", "ok-2", "bad-0", "bad-1", "bad-2")


def test_run_names_stay_valid_and_distinct_for_long_flow_names() -> None:
    long_a, long_b = "a" * 70 + "x", "a" * 70 + "y"
    a, b = run_name(long_a, 1764670000), run_name(long_b, 1764670000)
    assert len(a) <= 63 and len(b) <= 63 and a != b
    assert a.endswith("-1764670000")


def test_the_repeated_hour_is_not_due_a_second_time() -> None:
    cron = parse_cron("30 2 * * *", "Europe/Berlin")
    first = at("2026-10-25T02:30:00", "Europe/Berlin")  # the first 02:30 (UTC+2)
    assert cron.latest_at_or_before(first + 3600 + 60) == first


def test_a_wildcard_hour_goes_on_firing_through_the_repeated_hour() -> None:
    got = fires("0,30 * * * *", "2026-10-25T01:50:00", 4, "Europe/Berlin")
    assert got == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
                   "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00"]


def test_schedule_problems_name_the_field_for_validate_and_the_webhook() -> None:
    from millrace.schedule.policy import schedule_problems

    assert schedule_problems("f", {}) == []
    assert schedule_problems("f", {"schedule": {"cron": "@daily", "timezone": "Asia/Tokyo"}}) == []
    [bad_cron] = schedule_problems("f", {"schedule": {"cron": "0 0 31 2 * * * *"}})
    assert bad_cron.field == "spec.schedule.cron" and "8 fields" in bad_cron.message
    [bad_zone] = schedule_problems("f", {"schedule": {"cron": "@daily", "timezone": "Nowhere"}})
    assert bad_zone.field == "spec.schedule.timezone"
    [bad_policy] = schedule_problems("f", {"schedule": {"cron": "@daily", "concurrencyPolicy": "Sometimes"}})
    assert bad_policy.field == "spec.schedule.concurrencyPolicy"
