"""A resume payload against the suspended step's `resume_form`, the same check in both shells."""

from __future__ import annotations

from typing import Any

from ..errors import Problem
from ..model.flow import OpenFlow
from .inputs import InputError, validate_inputs
from .library import Library
from .paths import module_at


def resume_form_problem(flow_name: str, flow: OpenFlow, library: Library, step: str, payload: Any) -> Problem | None:
    """Why `payload` does not fit the form of suspended step `step`, or None when it does (or it has none)."""
    module = module_at(flow, step, library)
    form = module.suspend.resume_form if module and module.suspend else None
    if form is None or not form.schema_ or not isinstance(payload, dict):
        return None
    try:
        validate_inputs(form.schema_, payload)
    except InputError as exc:
        return Problem(flow_name, f"resume payload: {exc}", step=step,
                       field=f"suspend.resume_form.{exc.field}" if exc.field else "suspend.resume_form")
    return None
