"""The step API over HTTP: standard library only, one thread per request.

Routes (all JSON; step calls carry `Authorization: Bearer <step token>`):

    POST /v1/report                   StepReport of the attempt; 409 when one is recorded
    GET|PUT /v1/state                 the step's state across runs
    GET|PUT /v1/variables/<path>      a variable ({value, is_secret, description} to PUT)
    GET|PUT /v1/resources/<path>      a resource ({value, resource_type, description} to PUT)
    GET|PUT /v1/flow_user_state/<key> the run's custom flow state
    GET /v1/resume_urls[?approver=]   signed links that resume or cancel the run
    POST /v1/resume/<token>           the links themselves: the token is in the path;
    POST /v1/cancel/<token>           GET on them only shows what a POST would do
    GET /v1/approval/<token>          what an approver is asked, and the two links

The run and step a call acts on come from the token's claims, never from the URL.
A link is bound to the suspension of the attempt that asked for it, expires
after `link_lifetime_s`, and counts once however often it is used.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ValidationError

from ..protocol import StepReport
from .backend import Backend, Forbidden, Gone, NotFound, Refusal
from .models import ApiError, Recorded, Resource, ResumeRequest, ResumeUrls, Value, Variable
from .tokens import Claims, Signer, TokenError, TokenExpired

LOG = logging.getLogger("millrace.stepapi")

DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_LINK_LIFETIME_S = 30 * 24 * 3600.0
PREFIX = "/v1/"
POLL_S = 0.02


POD_HEADER = "X-Millrace-Pod"


class Unauthorized(Refusal):
    status, error = 401, "Unauthorized"


class TooLarge(Refusal):
    status, error = 413, "PayloadTooLarge"


class Reply(BaseModel):
    """What a route answers: a status and a body document."""

    status: int = 200
    body: BaseModel


Route = Callable[["Call"], Reply]


class Call:
    """One request as the routes see it: method, the path after its route, query, body, token."""

    def __init__(self, api: StepApiServer, method: str, rest: str, query: dict[str, list[str]],
                 headers: Any, body: bytes) -> None:
        self.api, self.method, self.rest, self.query, self.headers, self._body = api, method, rest, query, headers, body

    def body(self, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate_json(self._body or b"{}")
        except ValidationError as problem:
            raise Refusal(f"the request body is not a valid {model.__name__}: {problem}") from None

    def claims(self, use: str = "step", token: str | None = None) -> Claims:
        if token is None:
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise Unauthorized("no step token: send `Authorization: Bearer $MILLRACE_TOKEN`")
        try:
            claims = self.api.signer.verify(token.strip())
        except TokenExpired as problem:
            raise (Forbidden if use == "step" else Gone)(str(problem)) from None
        except TokenError as problem:
            raise Forbidden(str(problem)) from None
        if claims.use != use:
            raise Forbidden(f"this token is for {claims.use}, not for {use}")
        if use == "step":
            self.api.backend.authorize(claims)
        return claims

    def named(self, what: str) -> str:
        """The path or key after the route, which must not be empty."""
        if not self.rest:
            raise NotFound(f"no {what} given in the URL")
        return self.rest


def _report(call: Call) -> Reply:
    # The step's pod, as the step says (X-Millrace-Pod): a backend that keeps its log checks it is the attempt's.
    call.api.backend.report(call.claims(), call.body(StepReport), pod=call.headers.get(POD_HEADER) or None)
    return Reply(body=Recorded())


def _state(call: Call) -> Reply:
    claims = call.claims()
    if call.method == "GET":
        return Reply(body=Value(value=call.api.backend.get_state(claims)))
    call.api.backend.set_state(claims, call.body(Value).value)
    return Reply(body=Recorded())


def _keyed(what: str, getter: str, setter: str, model: type[BaseModel]) -> Route:
    """GET or PUT one entry named by the rest of the URL: a variable, a resource, a flow user state key."""

    def route(call: Call) -> Reply:
        claims, name = call.claims(), call.named(what)
        backend = call.api.backend
        if call.method == "GET":
            return Reply(body=Value(value=getattr(backend, getter)(claims, name)))
        body = call.body(model)
        getattr(backend, setter)(claims, name, body.value if isinstance(body, Value) else body)
        return Reply(body=Recorded())

    return route


def _resume_urls(call: Call) -> Reply:
    claims = call.claims()
    approver = next(iter(call.query.get("approver") or []), None)
    return Reply(body=call.api.resume_urls(claims.model_copy(update={"approver": approver})))


def _resume(use: str) -> Route:
    """POST approves (or disapproves); GET only shows what a POST would do: a link
    fetched by a mail scanner or a browser's preview approves nothing."""

    def route(call: Call) -> Reply:
        token = call.named("resume token")
        claims = call.claims(use, token=token)
        if call.method == "GET":
            call.api.backend.check_link(claims)
            return Reply(body=_described(claims, action=use))
        request = call.body(ResumeRequest)
        if claims.approver:
            request.approver = claims.approver
        call.api.backend.resume(claims, request)
        return Reply(body=Recorded())

    return route


class Approval(BaseModel):
    """What an approver is asked: which suspension of which run, and what each link does (by POST)."""

    run: str
    flow: str
    step: str
    attempt: int
    approver: str | None
    expires_at: float | None
    action: str | None = None
    resume: str | None = None
    cancel: str | None = None


def _described(claims: Claims, action: str | None = None, resume: str | None = None,
               cancel: str | None = None) -> Approval:
    return Approval(run=claims.run, flow=claims.flow, step=claims.path, attempt=claims.attempt, approver=claims.approver,
                    expires_at=claims.expires_at, action=action, resume=resume, cancel=cancel)


def _approval(call: Call) -> Reply:
    token = call.named("resume token")
    claims = call.claims("resume", token=token)
    call.api.backend.check_link(claims)
    # The page's links are this very link and its cancel twin: one suspension, one expiry, one count.
    cancel = call.api.signer.issue(claims.model_copy(update={"use": "cancel"}))
    return Reply(body=_described(claims, resume=f"{call.api.url}{PREFIX}resume/{token}",
                                 cancel=f"{call.api.url}{PREFIX}cancel/{cancel}"))


# route prefix -> (methods, handler); a prefix ending in "/" takes the rest of the path.
ROUTES: dict[str, tuple[frozenset[str], Route]] = {
    "report": (frozenset({"POST"}), _report),
    "state": (frozenset({"GET", "PUT"}), _state),
    "variables/": (frozenset({"GET", "PUT"}), _keyed("variable path", "get_variable", "set_variable", Variable)),
    "resources/": (frozenset({"GET", "PUT"}), _keyed("resource path", "get_resource", "set_resource", Resource)),
    "flow_user_state/": (frozenset({"GET", "PUT"}),
                         _keyed("flow user state key", "get_flow_user_state", "set_flow_user_state", Value)),
    "resume_urls": (frozenset({"GET"}), _resume_urls),
    "resume/": (frozenset({"GET", "POST"}), _resume("resume")),  # GET: a description only
    "cancel/": (frozenset({"GET", "POST"}), _resume("cancel")),
    "approval/": (frozenset({"GET"}), _approval),
}


def route(path: str) -> tuple[frozenset[str], Route, str]:
    """The route for a URL path, and the rest of the path after the route's prefix."""
    if path.startswith(PREFIX):
        tail = path[len(PREFIX):]
        for prefix, (methods, handler) in ROUTES.items():
            if tail == prefix or (prefix.endswith("/") and tail.startswith(prefix)):
                return methods, handler, unquote(tail[len(prefix):])
    raise NotFound(f"no such endpoint: {path}")


class Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        try:
            methods, handler, rest = route(url.path)
            if method not in methods:
                raise Refusal(f"{method} is not allowed on {url.path}; use {' or '.join(sorted(methods))}")
            body = self._read_body(api.max_body)
            reply = handler(Call(api, method, rest, parse_qs(url.query), self.headers, body))
        except Refusal as refusal:
            error = ApiError(error=refusal.error, message=str(refusal), detail=refusal.detail)
            reply = Reply(status=refusal.status, body=error)
        except Exception as exc:  # noqa: BLE001 - whatever the backend raised, the step gets a JSON answer
            LOG.exception("step API %s %s failed", method, url.path)
            first = str(exc).splitlines()[0][:300] if str(exc) else ""
            reply = Reply(status=500, body=ApiError(error="BackendError",
                                                    message=f"the step API's backend failed: {type(exc).__name__}: {first}"))
        self._send(reply)

    def _read_body(self, limit: int) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise Refusal("Content-Length is not a number") from None
        if length > limit:
            self._discard(length)
            raise TooLarge(f"the request body is {length} bytes, over the step API's limit of {limit} bytes",
                           limit=limit, size=length)
        return self.rfile.read(length) if length > 0 else b""

    def _discard(self, length: int) -> None:
        """Read an oversized body away unkept: a client still sending would get a broken pipe, not our 413."""
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                return
            length -= len(chunk)

    def _send(self, reply: Reply) -> None:
        data = reply.body.model_dump_json().encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the shell's terminal belongs to the run's progress, not to access logs."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a step that hangs up mid-request must not hold the shell's exit
    api: StepApiServer


class StepApiServer:
    """Serves one Backend on host:port (port 0: any free one) from a background thread."""

    def __init__(self, backend: Backend, *, signer: Signer | None = None, host: str = "127.0.0.1",
                 port: int = 0, max_body: int = DEFAULT_MAX_BODY,
                 link_lifetime_s: float = DEFAULT_LINK_LIFETIME_S) -> None:
        self.backend = backend
        self.signer = signer or Signer()
        self.max_body = max_body
        self.link_lifetime_s = link_lifetime_s
        self._server = _Server((host, port), Handler)
        self._server.api = self
        bound_host, bound_port = cast("tuple[str, int]", self._server.server_address[:2])  # an IP socket's: (host, port, ...)
        self.url = f"http://{bound_host}:{bound_port}"
        # serve_forever notices shutdown() once per poll: keep that short, the shell's exit waits for it.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_S,), name="step-api", daemon=True)

    def start(self) -> StepApiServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def token(self, claims: Claims) -> str:
        return self.signer.issue(claims)

    def resume_urls(self, claims: Claims) -> ResumeUrls:
        """Links for the suspension of the calling attempt: one id (so each counts once), one expiry."""
        bound = claims.model_copy(update={"link": secrets.token_hex(8),
                                          "expires_at": time.time() + self.link_lifetime_s})

        def link(use: str, endpoint: str) -> str:
            return f"{self.url}{PREFIX}{endpoint}/{self.signer.issue(bound.model_copy(update={'use': use}))}"

        return ResumeUrls(approvalPage=link("resume", "approval"), resume=link("resume", "resume"),
                          cancel=link("cancel", "cancel"))

