"""Retry delays: constant attempts first, then exponential ones.

Windmill (flows.rs Retry::interval) counts the failures so far, constant
ones included: after failure n (n >= 1) a constant retry waits `seconds`
while n <= constant.attempts, an exponential one `multiplier * seconds ^ n`.
Jitter comes from a hash of the step path and the count, not from a random
generator, so the planner stays a pure function.
"""

from __future__ import annotations

import hashlib

from ..model.flow import Retry


def next_delay(policy: Retry | None, failures: int, seed: str) -> float | None:
    """Seconds to wait before the next run after `failures` failed runs, or None when retries are spent."""
    if policy is None:
        return None
    constant = policy.constant.attempts if policy.constant else 0
    if failures <= constant:
        return float(policy.constant.seconds) if policy.constant else 0.0
    exp = policy.exponential
    if exp is None or failures - constant > exp.attempts:
        return None
    delay = exp.multiplier * exp.seconds ** failures
    if exp.random_factor:
        delay *= 1 + (exp.random_factor / 100) * _unit(f"{seed}/{failures}")
    return float(delay)


def _unit(seed: str) -> float:
    """A deterministic number in [-1, 1) derived from `seed`."""
    digest = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**63 - 1
