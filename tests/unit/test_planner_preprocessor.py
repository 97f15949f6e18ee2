"""A flow's preprocessor_module and trigger steps: how a triggered run begins.

Windmill (worker_flow.rs, push_next_flow_job with the preprocessor step; the
preprocessor doc's convention): the preprocessor gets the trigger's arguments as
they are, its `preprocessor` function is called, and what it returns is the flow
input. A run started by hand skips it.
"""

from __future__ import annotations

from typing import Any

from millrace.engine.actions import RunStep

from .planner_harness import Harness, flow, script

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer", "default": 2}},
          "required": ["name"]}
PRE = {"id": "preprocessor", "value": {"type": "rawscript", "language": "bun", "content": "export function preprocessor(event) {}",
                                       "input_transforms": {"event": {"type": "static"}}}}


def steps(mapping: dict[str, Any]) -> Any:
    def run(action: RunStep) -> Any:
        return mapping[action.path](action)
    return run


def test_a_triggered_run_gets_its_input_from_the_preprocessor() -> None:
    f = flow(script("greet", {"who": "flow_input.name", "n": "flow_input.n"}), schema=SCHEMA, preprocessor_module=PRE)
    h = Harness(f, steps({"preprocessor": lambda a: {"name": a.args["event"]["body"]["user"]},
                          "greet": lambda a: a.args}))
    state = h.run({"event": {"kind": "webhook", "body": {"user": "Ada"}}}, preprocess=True)
    assert state.phase == "Succeeded"
    assert state.result == {"who": "Ada", "n": 2}
    assert state.args == {"name": "Ada", "n": 2}
    pre = h.started[0]
    assert pre.path == "preprocessor" and pre.entrypoint == "preprocessor"
    assert pre.args == {"event": {"kind": "webhook", "body": {"user": "Ada"}}}
    assert h.started[1].entrypoint == "main"


def test_a_run_started_by_hand_skips_the_preprocessor() -> None:
    f = flow(script("greet", {"who": "flow_input.name"}), schema=SCHEMA, preprocessor_module=PRE)
    h = Harness(f, steps({"greet": lambda a: a.args}))
    assert h.run({"name": "Bo"}).result == {"who": "Bo"}
    assert [a.path for a in h.started] == ["greet"]


def test_a_preprocessor_result_that_fails_the_schema_fails_the_run_naming_the_field() -> None:
    f = flow(script("greet"), schema=SCHEMA, preprocessor_module=PRE)
    h = Harness(f, steps({"preprocessor": lambda a: {"nme": "x"}}))
    state = h.run({"event": {}}, preprocess=True)
    assert state.phase == "Failed" and state.error is not None
    assert state.error.name == "InputError" and "name" in state.error.message
    assert [a.path for a in h.started] == ["preprocessor"]


def test_a_preprocessor_that_returns_no_object_fails_the_run() -> None:
    h = Harness(flow(script("greet"), preprocessor_module=PRE), steps({"preprocessor": lambda a: [1]}))
    state = h.run({"event": {}}, preprocess=True)
    assert state.phase == "Failed" and "object of flow inputs" in (state.error.message if state.error else "")


def trigger_flow() -> Any:
    watcher = script("new_items")
    watcher["value"]["is_trigger"] = True
    return flow(watcher, script("handle", {"items": "results.new_items"}))


def test_a_trigger_step_that_finds_nothing_new_ends_the_run_as_skipped() -> None:
    for nothing in ([], None):
        h = Harness(trigger_flow(), steps({"new_items": lambda a, n=nothing: n}))
        state = h.run()
        assert state.phase == "Succeeded" and state.skipped and state.stopped_early
        assert [a.path for a in h.started] == ["new_items"]


def test_a_trigger_step_with_new_items_goes_on() -> None:
    h = Harness(trigger_flow(), steps({"new_items": lambda a: [1, 2], "handle": lambda a: a.args}))
    state = h.run()
    assert state.phase == "Succeeded" and not state.skipped and state.result == {"items": [1, 2]}


def test_an_explicit_stop_after_if_on_the_trigger_wins() -> None:
    watcher = script("new_items", stop_after_if={"expr": "false"})
    watcher["value"]["is_trigger"] = True
    h = Harness(flow(watcher, script("handle")), steps({"new_items": lambda a: [], "handle": lambda a: "ran"}))
    assert h.run().result == "ran"
