"""What the watches showed: a later state wins over an earlier one, a record is news once."""

from __future__ import annotations

from typing import Any

from millrace.cluster import names
from millrace.cluster.watched import Watched


def run(version: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "r", "resourceVersion": version}, "status": {"phase": phase}}


def record(name: str, version: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns", "name": name, "labels": {names.LABEL_RUN: names.label_value("r")}}
    if version is not None:
        meta["resourceVersion"] = version
    return {"metadata": meta, "data": {"report": "{}"}}


def test_a_status_the_operator_wrote_is_not_replaced_by_an_older_watch_event() -> None:
    watched = Watched()
    watched.put_run(run("12", "Running"))  # the status write's answer
    watched.put_run(run("11", "Pending"))  # the watch, a moment behind
    assert watched.run("ns", "r")["status"]["phase"] == "Running"
    watched.put_run(run("13", "Succeeded"))
    assert watched.run("ns", "r")["status"]["phase"] == "Succeeded"
    watched.drop_run("ns", "r")
    assert watched.run("ns", "r") is None


def test_a_record_is_news_once_whoever_shows_it_first() -> None:
    watched = Watched()
    assert watched.put_record(record("rep"))  # kept by the step API as it made it
    assert not watched.put_record(record("rep", "7"))  # then shown by the watch: no second pass
    assert watched.records("ns", "r")["rep"]["metadata"]["resourceVersion"] == "7"
    assert watched.has_record("ns", "r", "rep")
    watched.drop_record(record("rep"))
    assert not watched.has_record("ns", "r", "rep")
    watched.put_record(record("rep2"))
    watched.forget_run("ns", "r")
    assert watched.records("ns", "r") == {}


def test_the_watch_showing_a_record_the_step_api_is_still_making_is_no_news() -> None:
    watched = Watched()
    watched.coming(record("rep"))
    assert not watched.put_record(record("rep", "7"))  # the watch event, before the step API's create returned
    watched.made(record("rep"), created=True)  # the step API tells the run itself
    assert watched.has_record("ns", "r", "rep")
    watched.coming(record("other"))
    watched.made(record("other"), created=False)  # it existed: nothing kept, and no longer expected
    assert not watched.has_record("ns", "r", "other")
    assert watched.put_record(record("other", "9"))
