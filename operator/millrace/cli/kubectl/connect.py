"""Which cluster and namespace a command acts on, chosen as kubectl chooses them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ...cluster.kube import KubeApi
from .errors import PluginError


@dataclass(frozen=True)
class Target:
    kube: KubeApi
    namespace: str


def add_options(parser: argparse.ArgumentParser, before_command: bool) -> None:
    """kubectl's options, taken before the command and after it. After it they have no default, so
    that one given before is not overwritten."""
    default = None if before_command else argparse.SUPPRESS
    parser.add_argument("-n", "--namespace", default=default,
                        help="the namespace (default: the current context's, else default)")
    parser.add_argument("--context", default=default, help="the kubeconfig context to use (default: the current one)")
    parser.add_argument("--kubeconfig", default=default,
                        help="the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")


def connect(options: argparse.Namespace) -> Target:
    from kubernetes import config as kube_config
    from kubernetes.config.config_exception import ConfigException

    try:
        contexts, current = kube_config.list_kube_config_contexts(config_file=options.kubeconfig)
    except ConfigException as exc:
        raise PluginError(f"no usable kubeconfig: {exc}") from None
    chosen = current
    if options.context is not None:
        chosen = next((c for c in contexts if c["name"] == options.context), None)
        if chosen is None:
            raise PluginError(f"--context {options.context}: no such context in the kubeconfig "
                              f"(there are: {', '.join(c['name'] for c in contexts)})")
    namespace = options.namespace or ((chosen or {}).get("context") or {}).get("namespace") or "default"
    client = kube_config.new_client_from_config(config_file=options.kubeconfig, context=(chosen or {}).get("name"))
    return Target(KubeApi(client), namespace)
