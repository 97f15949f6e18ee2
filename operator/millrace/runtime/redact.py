"""Keep secret variables out of what is printed or stored: logs, errors, run records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .protocol import StepError, StepOutcome

MASK = "********"


def _spellings(secrets: Iterable[str]) -> list[str]:
    # A secret also appears JSON-escaped in a document; the longest go first so none is masked in part.
    found = {spelling for secret in secrets if secret for spelling in (secret, json.dumps(secret)[1:-1])}
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in _spellings(secrets):
        text = text.replace(secret, MASK)
    return text


def redact_json(value: Any, secrets: Iterable[str]) -> Any:
    """A JSON value with every string (keys too) redacted, e.g. a run record before it is saved.

    Only strings are touched: a secret made of digits must not turn a number into invalid JSON.
    """
    spellings = _spellings(secrets)
    return _masked(value, spellings) if spellings else value


def _masked(value: Any, spellings: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, spellings)
    if isinstance(value, dict):
        return {redact(str(key), spellings): _masked(item, spellings) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(item, spellings) for item in value]
    return value


def redact_outcome(outcome: StepOutcome, secrets: Iterable[str]) -> StepOutcome:
    """The outcome with its logs and error redacted; its result is data the next steps need, so it stays."""
    spellings = _spellings(secrets)
    if not spellings:
        return outcome
    error = outcome.error and StepError.model_validate(redact_json(outcome.error.model_dump(), spellings))
    return outcome.model_copy(update={"logs": redact(outcome.logs, spellings), "error": error})
