"""`import wmill` inside a millrace step: Windmill's client functions, served by the step API.

Standard library only: copied beside the step wrapper, never installed.
States, variables and resources go through the step API; shared state is
a file in the flow's shared directory (./shared), as in Windmill.
"""

import json
import os
from typing import Any, Optional

from millrace_step_api import StepApiError, call, quoted

__all__ = [
    "StepApiError", "get_state", "set_state", "get_variable", "set_variable", "get_resource", "set_resource",
    "set_flow_user_state", "get_flow_user_state", "get_resume_urls", "get_shared_state", "set_shared_state",
]

SHARED = "shared"


def get_state() -> Any:
    """This step's state, kept across runs of the flow (None before the first set_state)."""
    return call("GET", "state")["value"]


def set_state(value: Any) -> None:
    call("PUT", "state", {"value": value})


def get_variable(path: str) -> str:
    return call("GET", f"variables/{quoted(path)}")["value"]


def set_variable(path: str, value: str, is_secret: bool = False, description: str = "") -> None:
    call("PUT", f"variables/{quoted(path)}", {"value": value, "is_secret": is_secret, "description": description})


def get_resource(path: str, none_if_undefined: bool = False) -> Any:
    try:
        return call("GET", f"resources/{quoted(path)}")["value"]
    except StepApiError as refusal:
        if none_if_undefined and refusal.status == 404:
            return None
        raise


def set_resource(path: str, value: Any, resource_type: str = "any") -> None:
    call("PUT", f"resources/{quoted(path)}", {"value": value, "resource_type": resource_type})


def set_flow_user_state(key: str, value: Any) -> None:
    """A value the run keeps for its later steps; it ends with the run."""
    call("PUT", f"flow_user_state/{quoted(key)}", {"value": value})


def get_flow_user_state(key: str) -> Any:
    return call("GET", f"flow_user_state/{quoted(key)}")["value"]


def get_resume_urls(approver: Optional[str] = None) -> dict:
    """{"approvalPage", "resume", "cancel"}: signed links for the run's approval step."""
    query = "" if approver is None else "?approver=" + quoted(approver)
    return call("GET", f"resume_urls{query}")


def set_shared_state(value: Any, path: str = "state.json") -> None:
    with open(os.path.join(SHARED, path), "w", encoding="utf-8") as stream:
        json.dump(value, stream)


def get_shared_state(path: str = "state.json") -> Any:
    with open(os.path.join(SHARED, path), encoding="utf-8") as stream:
        return json.load(stream)
