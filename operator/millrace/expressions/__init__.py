"""Sandboxed JavaScript expressions: input transforms, loop iterators,
branch, stop, skip and retry conditions.

`Sandbox` compiles and evaluates them in V8 (mini-racer); the `referenced_*`
functions answer, without V8, what an expression reads.
"""

from millrace.expressions.analysis import (
    referenced_resources,
    referenced_results,
    referenced_variables,
)
from millrace.expressions.errors import (
    ExpressionError,
    ExpressionMemoryError,
    ExpressionRuntimeError,
    ExpressionSyntaxError,
    ExpressionTimeout,
)
from millrace.expressions.sandbox import EXTRA_NAMES, Deferred, EvalContext, Sandbox

__all__ = [
    "EXTRA_NAMES",
    "Deferred",
    "EvalContext",
    "ExpressionError",
    "ExpressionMemoryError",
    "ExpressionRuntimeError",
    "ExpressionSyntaxError",
    "ExpressionTimeout",
    "Sandbox",
    "referenced_resources",
    "referenced_results",
    "referenced_variables",
]
