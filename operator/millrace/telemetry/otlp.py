"""Spans exported over OTLP/HTTP with the JSON encoding, from a background thread.

No OpenTelemetry SDK: one POST of `{"resourceSpans": ...}` to `<endpoint>/v1/traces`
per batch, with urllib. Configured by the standard variables (OpenTelemetry's
"Environment Variable Specification"): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as
it is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces), OTEL_EXPORTER_OTLP_HEADERS
(and _TRACES_HEADERS), OTEL_EXPORTER_OTLP_TIMEOUT (ms), OTEL_SERVICE_NAME,
OTEL_TRACES_EXPORTER (otlp, or none). Other exporters, and protocols other than
http/json, are refused.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.parse
import urllib.request
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict

LOG = logging.getLogger("millrace.telemetry")
BATCH = 512
FLUSH_S = 1.0


class Span(BaseModel):
    """One finished span, as millrace makes them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    start: float  # unix seconds
    end: float
    attributes: dict[str, str | int] = {}
    status: Literal["ok", "error"] = "ok"
    message: str = ""


class OtlpSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    headers: dict[str, str] = {}
    timeout_s: float = 10.0
    service: str = "millrace-operator"


def settings_from_environment(environ: Mapping[str, str], service: str) -> OtlpSettings | None:
    """The exporter's settings, or None when no endpoint is set (or the exporter is `none`)."""
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip() or "otlp"
    if exporter == "none":
        return None
    if exporter != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter}: millrace exports spans over OTLP only (otlp, or none for no export)")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(name, "").strip()
        if protocol and protocol != "http/json":
            raise ValueError(f"{name}={protocol}: millrace exports spans as http/json only (set it to http/json or unset it)")
    url = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not url:
        base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if not base:
            return None
        url = base.rstrip("/") + "/v1/traces"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"OTLP endpoint {url!r}: an http:// or https:// URL is needed")
    headers = {**_headers(environ.get("OTEL_EXPORTER_OTLP_HEADERS", "")),
               **_headers(environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", ""))}
    timeout = environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or environ.get("OTEL_EXPORTER_OTLP_TIMEOUT") or "10000"
    return OtlpSettings(url=url, headers=headers, timeout_s=float(timeout) / 1000,
                        service=environ.get("OTEL_SERVICE_NAME", "").strip() or service)


def _headers(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"OTLP header {item!r}: key=value expected")
        out[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return out


def request_body(spans: list[Span], service: str) -> dict[str, Any]:
    """The OTLP/JSON ExportTraceServiceRequest: ids in hex, times as decimal strings of nanoseconds."""
    return {"resourceSpans": [{
        "resource": {"attributes": [_attribute("service.name", service)]},
        "scopeSpans": [{"scope": {"name": "millrace"}, "spans": [_span(span) for span in spans]}],
    }]}


def _span(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": 1,  # SPAN_KIND_INTERNAL
        "startTimeUnixNano": str(int(span.start * 1e9)),
        "endTimeUnixNano": str(int(max(span.end, span.start) * 1e9)),
        "attributes": [_attribute(key, value) for key, value in sorted(span.attributes.items())],
        "status": {"code": 1} if span.status == "ok" else {"code": 2, "message": span.message},
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    return out


def _attribute(key: str, value: str | int) -> dict[str, Any]:
    return {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}


class Exporter:
    """Sends spans in batches from its own thread, so a slow collector never holds a reconcile pass.
    A batch the collector refuses or cannot take is logged and dropped."""

    def __init__(self, settings: OtlpSettings) -> None:
        self.settings = settings
        self._queue: queue.Queue[Span | None] = queue.Queue(maxsize=10 * BATCH)
        self._thread = threading.Thread(target=self._serve, name="otlp-exporter", daemon=True)
        self._thread.start()

    def export(self, spans: list[Span]) -> None:
        for span in spans:
            try:
                self._queue.put_nowait(span)
            except queue.Full:
                LOG.warning("OTLP export queue full: span %s dropped", span.name)

    def close(self) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(self.settings.timeout_s + 5)

    def _serve(self) -> None:
        done = False
        while not done:
            batch: list[Span] = []
            try:
                item = self._queue.get()
                while item is not None:
                    batch.append(item)
                    if len(batch) >= BATCH:
                        break
                    item = self._queue.get(timeout=FLUSH_S)
                done = item is None
            except queue.Empty:
                pass
            if batch:
                self._send(batch)

    def _send(self, batch: list[Span]) -> None:
        body = json.dumps(request_body(batch, self.settings.service)).encode()
        request = urllib.request.Request(self.settings.url, data=body, method="POST",
                                         headers={**self.settings.headers, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as answer:
                answer.read()
        except Exception as exc:  # noqa: BLE001 - telemetry never fails a run
            LOG.warning("OTLP export of %d spans to %s failed: %s", len(batch), self.settings.url, exc)
