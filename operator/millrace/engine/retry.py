"""Retry delays: constant attempts first, then exponential ones.

Jitter comes from a hash of the step path and attempt, not from a random
generator, so the planner stays a pure function.
"""

from __future__ import annotations

import hashlib

from ..model.flow import Retry


def next_delay(policy: Retry | None, attempts_done: int, seed: str) -> float | None:
    """Seconds to wait before the next attempt, or None when retries are spent."""
    if policy is None:
        return None
    constant = policy.constant.attempts if policy.constant else 0
    if attempts_done <= constant:
        return float(policy.constant.seconds) if policy.constant else 0.0
    exp = policy.exponential
    nth = attempts_done - constant  # 1 for the first exponential retry
    if exp is None or nth > exp.attempts:
        return None
    delay = exp.multiplier * exp.seconds ** nth
    if exp.random_factor:
        delay *= 1 + (exp.random_factor / 100) * _unit(f"{seed}/{attempts_done}")
    return float(delay)


def _unit(seed: str) -> float:
    """A deterministic number in [-1, 1) derived from `seed`."""
    digest = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**63 - 1
