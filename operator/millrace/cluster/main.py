"""Start the operator: the step API server, then kopf with the handlers."""

from __future__ import annotations

import logging
import os

import kopf
import prometheus_client
from kubernetes import config as kube_config

from ..expressions import Sandbox
from ..runtime.stepapi.server import StepApiServer
from ..runtime.stepapi.tokens import Signer
from . import operator as handlers
from . import schedule_handlers, trigger_handlers
from ..triggers.server import TriggerServer
from .triggers import resolver
from .kube import KubeApi
from .reconcile import OperatorConfig
from .stepapi_backend import ClusterBackend

LOG = logging.getLogger("millrace.operator")


def _load_kube_config() -> None:
    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()


def run_operator(
    *,
    namespaces: list[str],
    all_namespaces: bool,
    api_host: str,
    api_port: int,
    api_url: str | None,
    liveness: str,
    signer: Signer,
    webhook_port: int = 8443,
    hooks_port: int = 0,
    hooks_url: str | None = None,
    webhook_cert_dir: str | None = None,
    metrics_port: int = 0,
) -> int:
    logging.basicConfig(level=os.environ.get("MILLRACE_LOG_LEVEL", "INFO"),
                        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":"%(message)s"}')
    _load_kube_config()
    # V8 initialises its process-wide state with the first isolate; doing that here, once,
    # keeps handler threads from racing to do it (which aborts the process).
    Sandbox().close()
    if metrics_port:
        prometheus_client.start_http_server(metrics_port, addr=api_host)
    kube = KubeApi()
    backend = ClusterBackend(kube, handlers.WAKEUPS.notify)
    server = StepApiServer(backend, signer=signer, host=api_host, port=api_port)
    listening = server.url
    # Resume links and step pods use the address steps reach, not the one bound.
    server.url = api_url or listening
    server.start()
    LOG.info("step API listening on %s, steps reach it at %s", listening, server.url)
    webhooks = None
    if webhook_cert_dir:
        # Imported only when served: kopf refuses admission handlers without a server.
        from . import admission_handlers

        def webhooks(settings: kopf.OperatorSettings) -> None:
            admission_handlers.configure_webhooks(settings, host="0.0.0.0", port=webhook_port,
                                                  certfile=f"{webhook_cert_dir}/tls.crt", pkeyfile=f"{webhook_cert_dir}/tls.key")
    config = OperatorConfig(api_url=server.url, signer=signer,
                            claim_timeout_s=float(os.environ.get("MILLRACE_CLAIM_TIMEOUT_S", "120")),
                            resync_s=float(os.environ.get("MILLRACE_RESYNC_S", "30")))
    schedule_handlers.configure(kube)
    hooks = None
    if hooks_port:
        hooks = TriggerServer(resolver(kube, signer.sign), host=api_host, port=hooks_port)
        hooks.start()
        trigger_handlers.configure(kube, hooks_url or hooks.url, signer.sign)
        LOG.info("flow webhooks listening on %s", hooks.url)
    handlers.configure(config, kube,
                       webhooks=webhooks, fixed_namespaces=bool(namespaces) and not all_namespaces)
    try:
        kopf.run(
            standalone=True,
            clusterwide=all_namespaces,
            namespaces=namespaces or ([] if all_namespaces else [os.environ.get("MILLRACE_NAMESPACE", "default")]),
            liveness_endpoint=liveness,
            # kopf's default identity looks the uid up in /etc/passwd, where the image has no entry for 65532.
            identity=os.environ.get("HOSTNAME") or "millrace-operator",
        )
    finally:
        server.close()
        if hooks is not None:
            hooks.close()
    return 0
