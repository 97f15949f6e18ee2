"""Start the operator: the step API server, then kopf with the handlers."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
from typing import TYPE_CHECKING, Any, cast

import kopf
import prometheus_client
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from ..expressions import Sandbox
from ..runtime.stepapi.server import DEFAULT_LINK_LIFETIME_S, StepApiServer
from ..runtime.stepapi.tokens import Signer
from . import leader
from . import operator as handlers
from . import schedule_handlers, trigger_handlers
from ..telemetry.otlp import Exporter, settings_from_environment
from ..triggers.server import TriggerServer
from .triggers import resolver
from .kube import KubeApi
from .policy import policy_from_environment
from .reconcile import OperatorConfig
from .secrecy import Secrecy
from .secretwatch import SecretWatch
from .stepapi_backend import ClusterBackend

if TYPE_CHECKING:
    # kopf.run() types its identity as this NewType of str, which kopf does not export.
    from kopf._core.engines.peering import Identity

LOG = logging.getLogger("millrace.operator")
PYTHON_CACHE_VOLUME_ENV = "MILLRACE_PYTHON_CACHE_VOLUME"  # the chart's steps.pythonCache, as JSON
HUB_NAMESPACE_ENV = "MILLRACE_HUB_NAMESPACE"  # the chart's hub.namespace


def _load_kube_config() -> None:
    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()


def _elector(namespace: str) -> leader.Elector:
    # A pod's name: its restarted container takes over at once (the old one has exited).
    # Elsewhere the process id keeps two operators on one host apart.
    identity = os.environ.get("MILLRACE_POD_NAME") or f"{socket.gethostname()}/{os.getpid()}"
    timing = leader.Timing.from_duration(float(os.environ.get("MILLRACE_LEASE_S", "15")))
    return leader.Elector(kube_client.CoordinationV1Api(), namespace,
                          os.environ.get("MILLRACE_LEASE_NAME", "millrace-leader"), identity, timing)


def _exit_on_sigterm() -> None:
    """Until kopf handles SIGTERM itself (it stops, then run_operator cleans up): end by SystemExit,
    so that a replica stopped while it starts frees its Lease on the way out all the same."""
    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def _lost_lead() -> None:
    LOG.error("the Lease was not renewed in time: stopping before another replica takes over")
    logging.shutdown()
    os._exit(1)


def run_operator(
    *,
    namespaces: list[str],
    all_namespaces: bool,
    api_host: str,
    api_port: int,
    api_url: str | None,
    liveness: str,
    signer: Signer,
    webhook_host: str = "0.0.0.0",
    webhook_port: int = 8443,
    hooks_port: int = 0,
    hooks_url: str | None = None,
    webhook_cert_dir: str | None = None,
    metrics_port: int = 0,
) -> int:
    logging.basicConfig(level=os.environ.get("MILLRACE_LOG_LEVEL", "INFO"),
                        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":"%(message)s"}')
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # kopf logs each handler call at INFO: a line per watch event of every run, thousands under load.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        otlp = settings_from_environment(os.environ, "millrace-operator")
    except ValueError as exc:
        raise SystemExit(f"tracing: {exc}") from None
    _load_kube_config()
    # V8 initialises its process-wide state with the first isolate; doing that here, once,
    # keeps handler threads from racing to do it (which aborts the process).
    with Sandbox() as first:
        first.start()
    own_namespace = os.environ.get("MILLRACE_NAMESPACE", "default")
    elector = _elector(own_namespace)
    _exit_on_sigterm()
    with contextlib.ExitStack() as cleanup:
        # Run last, whatever ends the operator from here on (a stop during start-up too): the Lease is freed.
        cleanup.callback(elector.release)
        with leader.standby_liveness(liveness):
            elector.acquire()
        elector.keep(_lost_lead)
        if metrics_port:
            prometheus_client.start_http_server(metrics_port, addr=api_host)
        tracing = None
        if otlp is not None:
            tracing = Exporter(otlp)
            cleanup.callback(tracing.close)
            LOG.info("exporting run and step spans to %s", otlp.url)
        kube = KubeApi()
        policy = policy_from_environment()
        secrecy = Secrecy(kube, SecretWatch(kube))
        backend = ClusterBackend(kube, handlers.notify, secrecy, handlers.WATCHED)
        server = StepApiServer(backend, signer=signer, host=api_host, port=api_port,
                               link_lifetime_s=float(os.environ.get("MILLRACE_LINK_LIFETIME_S", DEFAULT_LINK_LIFETIME_S)))
        listening = server.url
        # Resume links and step pods use the address steps reach, not the one bound.
        server.url = api_url or listening
        server.start()
        cleanup.callback(server.close)
        LOG.info("step API listening on %s, steps reach it at %s", listening, server.url)
        webhooks = None
        if webhook_cert_dir:
            # Imported only when served: kopf refuses admission handlers without a server.
            from . import admission_handlers

            def webhooks(settings: kopf.OperatorSettings) -> None:
                admission_handlers.configure_webhooks(settings, host=webhook_host, port=webhook_port,
                                                      certfile=f"{webhook_cert_dir}/tls.crt", pkeyfile=f"{webhook_cert_dir}/tls.key",
                                                      policy=policy)
        config = OperatorConfig(api_url=server.url, signer=signer,
                                claim_timeout_s=float(os.environ.get("MILLRACE_CLAIM_TIMEOUT_S", "120")),
                                resync_s=float(os.environ.get("MILLRACE_RESYNC_S", "30")),
                                workers=int(os.environ.get("MILLRACE_WORKERS", "4")),
                                job_ttl_s=int(os.environ.get("MILLRACE_JOB_TTL_S", "3600")),
                                retention_s=float(os.environ["MILLRACE_RETENTION_S"]) if os.environ.get("MILLRACE_RETENTION_S") else None,
                                policy=policy, secrecy=secrecy, python_cache=python_cache_volume(),
                                hub_namespace=os.environ.get(HUB_NAMESPACE_ENV) or None, tracing=tracing)
        schedule_handlers.configure(kube, schedule_handlers.clock_starting_at(os.environ.get("MILLRACE_SCHEDULE_CLOCK_START")))
        if hooks_port:
            hooks = TriggerServer(resolver(kube, signer.sign), host=api_host, port=hooks_port)
            hooks.start()
            cleanup.callback(hooks.close)
            trigger_handlers.configure(kube, hooks_url or hooks.url, signer.sign)
            LOG.info("flow webhooks listening on %s", hooks.url)
        handlers.configure(config, kube, webhooks=webhooks, leading=elector.leading)
        kopf.run(
            standalone=True,
            # Named here: kopf would ask getpass, which fails for a uid that /etc/passwd does not list (the chart's 65532).
            identity=cast("Identity", f"millrace@{socket.gethostname()}"),
            clusterwide=all_namespaces,
            namespaces=namespaces or ([] if all_namespaces else [own_namespace]),
            liveness_endpoint=liveness,
        )
    return 0


def python_cache_volume() -> dict[str, Any] | None:
    """The chart's steps.pythonCache: a volume source for Python steps' packages, or None."""
    text = os.environ.get(PYTHON_CACHE_VOLUME_ENV)
    if not text:
        return None
    source = json.loads(text)
    if not isinstance(source, dict) or len(source) != 1:
        raise SystemExit(f"{PYTHON_CACHE_VOLUME_ENV} must be one volume source, e.g. "
                         '{"persistentVolumeClaim": {"claimName": "python-packages"}}: got ' + text)
    return source
