"""Errors raised while checking or evaluating a JavaScript expression.

Messages speak only about the JavaScript; the engine adds flow, step and
field names when it wraps them.
"""

from __future__ import annotations


class ExpressionError(Exception):
    """Base class: `expr` is the expression text as written in the flow."""

    def __init__(self, expr: str, message: str) -> None:
        super().__init__(message)
        self.expr = expr
        self.message = message


class ExpressionSyntaxError(ExpressionError):
    """The expression does not parse (reported at compile time)."""


class ExpressionRuntimeError(ExpressionError):
    """The expression threw: a `throw`, a ReferenceError, a TypeError...

    `name` is the JavaScript error name (`ReferenceError`, `TypeError`,
    `Error`, ...), or `Uncaught` when a non-Error value was thrown.
    """

    def __init__(self, expr: str, name: str, message: str) -> None:
        super().__init__(expr, f"{name}: {message}" if message else name)
        self.name = name


class ExpressionTimeout(ExpressionError):
    """The expression ran longer than the sandbox's time limit."""


class ExpressionMemoryError(ExpressionError):
    """The expression allocated more than the sandbox's memory limit."""
