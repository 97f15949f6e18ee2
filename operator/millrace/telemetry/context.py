"""W3C trace context of a run and its steps: pure.

Ids are derived from what they stand for (a run's uid, a step path and
attempt) by hashing, so every pass of every operator replica, before and
after a restart, names the same span: the TRACEPARENT a step pod got and
the span exported when the step ended agree without any shared memory.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True)
class SpanContext:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    sampled: bool = True

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def parse_traceparent(text: str) -> SpanContext:
    """A traceparent value as the W3C Trace Context spec (level 1) defines it; ValueError naming what is wrong."""
    found = _TRACEPARENT.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a W3C traceparent (00-<32 hex trace id>-<16 hex span id>-<2 hex flags>)")
    version, trace_id, span_id, flags = found.groups()
    if version == "ff":
        raise ValueError(f"{text!r}: version ff is invalid")
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        raise ValueError(f"{text!r}: an all-zero trace id or span id is invalid")
    return SpanContext(trace_id, span_id, bool(int(flags, 16) & 1))


def derived_id(hex_digits: int, *identity: str | int) -> str:
    """`hex_digits` of the sha256 of the JSON list of `identity` (never all zero)."""
    digest = hashlib.sha256(json.dumps(list(identity)).encode("utf-8")).hexdigest()[:hex_digits]
    return digest if set(digest) != {"0"} else "1".rjust(hex_digits, "0")


@dataclass(frozen=True)
class RunTrace:
    """Where a run's spans go: its own span, and the span it hangs under (None: the trace's root)."""

    run: SpanContext
    parent_span_id: str | None

    @property
    def traceparent(self) -> str:
        """What the run's annotation says once the operator has written one: the run's own span."""
        return self.run.traceparent

    def step(self, path: str, attempt: int) -> SpanContext:
        """The span of one step attempt, a child of the run's: a step pod's TRACEPARENT."""
        return SpanContext(self.run.trace_id, derived_id(16, self.run.span_id, path, attempt, "step"), self.run.sampled)


def run_trace(uid: str, annotation: str | None) -> RunTrace:
    """A run's trace from its `millrace.dev/traceparent` annotation.

    Absent: a trace of its own, rooted at the run's span, which the operator writes into the
    annotation. Present and naming the run's own span (what the operator wrote): the same.
    Anything else: the caller's span, under which the run's span hangs. Invalid: ValueError."""
    own = derived_id(16, uid, "run")
    if annotation is None:
        return RunTrace(SpanContext(derived_id(32, uid, "trace"), own), None)
    given = parse_traceparent(annotation)
    run = SpanContext(given.trace_id, own, given.sampled)
    return RunTrace(run, None if given.span_id == own else given.span_id)
