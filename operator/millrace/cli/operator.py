"""`millrace operator`: run the Kubernetes operator (kopf) and its step API."""

from __future__ import annotations

import argparse
import base64
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the operator's own: registering the command imports nothing of it
    from ..runtime.stepapi.tokens import Signer


def register(sub: Any) -> None:
    parser = sub.add_parser("operator", help="run the Kubernetes operator")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--api-host", default=os.environ.get("MILLRACE_API_HOST", "0.0.0.0"))
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("MILLRACE_API_PORT", "8080")))
    parser.add_argument("--api-url", default=os.environ.get("MILLRACE_API_URL"),
                        help="the step API as step pods reach it (default: http://<service>.<namespace>.svc:<port>)")
    parser.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="kopf's liveness endpoint")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("MILLRACE_METRICS_PORT", "9090")),
                        help="Prometheus metrics on this port (0: off)")
    parser.add_argument("--webhook-host", default=os.environ.get("MILLRACE_WEBHOOK_HOST", "0.0.0.0"),
                        help="the address the validating webhook binds")
    parser.add_argument("--webhook-port", type=int, default=int(os.environ.get("MILLRACE_WEBHOOK_PORT", "8443")))
    parser.add_argument("--hooks-port", type=int, default=int(os.environ.get("MILLRACE_HOOKS_PORT", "0")),
                        help="serve Flow webhooks (POST /hooks/<namespace>/<flow>) on this port; 0: not served")
    parser.add_argument("--hooks-url", default=os.environ.get("MILLRACE_HOOKS_URL"),
                        help="the address callers reach the webhooks at, shown in Flow status")
    parser.add_argument("--webhook-cert-dir", default=os.environ.get("MILLRACE_WEBHOOK_CERT_DIR"),
                        help="serve the validating webhook with tls.crt and tls.key from this folder")


def signer_from_environment() -> Signer:
    """Step tokens must survive an operator restart: the key comes from a Secret."""
    from ..runtime.stepapi.tokens import Signer

    key = os.environ.get("MILLRACE_SIGNING_KEY")
    return Signer(base64.b64decode(key) if key else None)


def run(options: argparse.Namespace) -> int:
    from ..cluster.main import run_operator

    return run_operator(
        namespaces=options.namespace,
        all_namespaces=options.all_namespaces,
        api_host=options.api_host,
        api_port=options.api_port,
        api_url=options.api_url,
        liveness=options.liveness,
        signer=signer_from_environment(),
        webhook_host=options.webhook_host,
        webhook_port=options.webhook_port,
        webhook_cert_dir=options.webhook_cert_dir,
        metrics_port=options.metrics_port,
        hooks_port=options.hooks_port,
        hooks_url=options.hooks_url,
    )
