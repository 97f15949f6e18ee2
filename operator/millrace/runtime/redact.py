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


def unmask(recorded: Any, real: Any, secrets: Iterable[str]) -> Any:
    """`recorded` (a masked copy, maybe changed since) with each masked string put back from `real`.

    A string is put back only where `real` holds, at the same place, the string
    that masks into it: whatever changed since stays as recorded. The shells keep
    real values in memory and record masked ones; this joins the two again.
    """
    spellings = _spellings(secrets)
    return _unmasked(recorded, real, spellings) if spellings and real is not None else recorded


def _unmasked(recorded: Any, real: Any, spellings: list[str]) -> Any:
    if isinstance(recorded, str):
        return real if isinstance(real, str) and MASK in recorded and redact(real, spellings) == recorded else recorded
    if isinstance(recorded, dict) and isinstance(real, dict):
        keys = {redact(str(key), spellings): key for key in real}
        out = {}
        for key, item in recorded.items():
            original = keys.get(key, key)
            out[original] = _unmasked(item, real.get(original), spellings)
        return out
    if isinstance(recorded, list) and isinstance(real, (list, tuple)) and len(recorded) == len(real):
        return [_unmasked(item, before, spellings) for item, before in zip(recorded, real)]
    return recorded
