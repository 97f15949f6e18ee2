"""Object names of a run: deterministic, valid, and injective in the identity they stand for."""

from __future__ import annotations

import random
import re
import string

import pytest

from millrace.cluster import names
from millrace.runtime.datapaths import DataPathError, checked

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
PER_ATTEMPT = (names.job_name, names.child_run_name, names.step_secret_name, names.report_name)


def test_names_are_deterministic_valid_and_readable() -> None:
    name = names.job_name("hello-run", "loop/3/inner", 2)
    assert name == names.job_name("hello-run", "loop/3/inner", 2)  # a restarted operator finds its Job
    assert name.startswith("hello-run-loop-3-inner-2-") and DNS_LABEL.fullmatch(name)
    long = names.job_name("r" * 200, "Some_Step/Χ" * 20, 1)
    assert len(long) == 63 and DNS_LABEL.fullmatch(long)
    assert names.job_name("r" * 200, "a", 1) != names.job_name("r" * 200, "b", 1)


@pytest.mark.parametrize(("one", "other"), [
    (("daily", "report-send", 1), ("daily-report", "send", 1)),  # run + step spelled alike
    (("run", "x-1-b", 1), ("run", "x/1/b", 1)),  # a step id that looks like a loop path
    (("run", "a", 11), ("run", "a-1", 1)),
    (("run", "A", 1), ("run", "a", 1)),
])
@pytest.mark.parametrize("name_of", PER_ATTEMPT)
def test_identities_spelled_alike_get_different_names(one, other, name_of) -> None:
    assert name_of(*one) != name_of(*other)


def test_the_kinds_of_one_attempt_get_different_names() -> None:
    assert len({name_of("run", "a", 1) for name_of in PER_ATTEMPT}) == len(PER_ATTEMPT)
    assert names.definition_name("run") != names.shared_claim_name("run")


def test_states_and_data_paths_spelled_alike_get_different_names() -> None:
    assert names.state_name("a-b", "c") != names.state_name("a", "b-c")
    # A schedule's runs keep their state apart from runs by hand, and no scope meets a flow or step name.
    assert names.state_name("f", "watch", "schedule") != names.state_name("f", "watch")
    assert names.state_name("f", "watch", "schedule") != names.state_name("f-schedule", "watch")
    assert names.data_name("variable", "f/a-b") != names.data_name("variable", "f/a/b")
    assert names.data_name("variable", "f/x") != names.data_name("resource", "f/x")
    # A step cannot aim its variable at a name the operator uses.
    assert names.data_name("variable", "millrace-signing-key") != "millrace-signing-key"


def test_no_two_of_many_random_identities_share_a_name() -> None:
    rng = random.Random(9)
    alphabet = string.ascii_lowercase[:3] + "-/_.A1"
    identities = {("".join(rng.choices(alphabet, k=rng.randint(1, 6))), "".join(rng.choices(alphabet, k=rng.randint(1, 6))),
                   rng.randint(1, 12)) for _ in range(20000)}
    for name_of in (names.job_name, names.report_name):
        made = {name_of(*identity) for identity in identities}
        assert len(made) == len(identities)
        assert all(DNS_LABEL.fullmatch(name) for name in made)
    states = {(flow, step) for flow, step, _ in identities}
    assert len({names.state_name(*state) for state in states}) == len(states)


def test_labels_keep_a_value_that_fits_and_hash_one_that_does_not() -> None:
    assert names.label_value("daily-report") == "daily-report"
    assert names.label_value("f/app/flow") != names.label_value("f-app-flow")
    assert len(names.label_value("x" * 100)) == 63


def run_owned(uid: str = "uid-1", path: str | None = "a", attempt: str | None = "1", controller: bool = True) -> dict:
    annotations = {k: v for k, v in ((names.ANNOTATION_STEP_PATH, path), (names.ANNOTATION_ATTEMPT, attempt)) if v}
    return {"metadata": {"name": "x", "namespace": "ns", "annotations": annotations,
                         "ownerReferences": [{"uid": uid, "controller": controller}]}}


def test_an_object_is_adopted_only_when_owned_by_the_run_and_annotated_for_the_attempt() -> None:
    assert names.owned(run_owned(), "uid-1", "a", 1)
    assert names.owned(run_owned(), "uid-1")
    assert not names.owned(run_owned(uid="uid-2"), "uid-1", "a", 1)  # another run (or the same name made again)
    assert not names.owned(run_owned(attempt="2"), "uid-1", "a", 1)
    assert not names.owned(run_owned(path="b"), "uid-1", "a", 1)
    assert not names.owned(run_owned(controller=False), "uid-1", "a", 1)
    assert not names.owned({"metadata": {"name": "x"}}, "uid-1")
    assert "ns/x" in names.foreign("ConfigMap", run_owned(), "attempt a/1 of run r")


@pytest.mark.parametrize("path", ["f/a-b", "f/a/b", "u/alice/api_key", "millrace-signing-key", "f/app.v2/x"])
def test_windmill_paths_are_accepted_alike_in_both_shells(path: str) -> None:
    assert checked(path) == path


@pytest.mark.parametrize("path", ["", "../x", "a//b", "/abs", ".hidden", "a/.b", "a b", "a\\b"])
def test_paths_that_are_not_windmill_paths_are_refused(path: str) -> None:
    with pytest.raises(DataPathError, match="invalid path"):
        checked(path)
