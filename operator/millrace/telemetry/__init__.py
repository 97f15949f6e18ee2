"""Trace context (W3C traceparent) and spans exported over OTLP/HTTP; docs/operations.md, "Tracing"."""
