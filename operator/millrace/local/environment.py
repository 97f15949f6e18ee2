"""What a local step's process starts from: its environment, and the fork server of python3 steps.

Apart from the executor so that `millrace run` can start the fork server (a Python of its own,
booting on another core) before it imports the executor and the step API.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping

from ..runtime import toolchain
from ..runtime.languages import LANGUAGES, WRAPPERS
from .forkserver import ForkServer

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
LOOPBACK = ("127.0.0.1", "localhost")
# Settings a step shares with its user: time zone, scratch, build caches, and how its packages are fetched.
PASSED_THROUGH = ("TZ", "TMPDIR", "MILLRACE_CACHE", "MILLRACE_GO_CACHE", "MILLRACE_UV", "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
                  "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
INSTALLER_SETTINGS = ("PIP_", "UV_", "NPM_CONFIG_", "BUN_", "DENO_")  # prefixes of the package managers' own settings
PYTHON_CACHE = "MILLRACE_PYTHON_CACHE"  # where Python steps' packages are installed (sdk/millrace_packages.py)


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What every step starts from: none of the engine's secrets, a PATH and HOME that work."""
    base = {"PATH": environ.get("PATH") or DEFAULT_PATH, "HOME": environ.get("HOME") or tempfile.gettempdir()}
    base["LANG"] = environ.get("LANG") or "C.UTF-8"
    base.update((name, environ[name]) for name in PASSED_THROUGH if name in environ)
    if any(name.lower().endswith("_proxy") and name.lower() != "no_proxy" for name in base):
        # The step API is on loopback and its requests carry the step's token: never through a proxy.
        # Both spellings get the same list: programs differ in which one they read first.
        hosts = [host for name in ("NO_PROXY", "no_proxy") for host in base.get(name, "").split(",") if host]
        base["NO_PROXY"] = base["no_proxy"] = ",".join(dict.fromkeys([*hosts, *LOOPBACK]))
    base.update((name, value) for name, value in environ.items() if name.startswith(INSTALLER_SETTINGS))
    base[PYTHON_CACHE] = environ.get(PYTHON_CACHE) or str(toolchain.cache_dir(environ) / "python")
    return base


def python_fork_server(python: str, base_env: dict[str, str]) -> ForkServer:
    """The fork server of python3 steps (not started: see ForkServer.start)."""
    return ForkServer(python, WRAPPERS / LANGUAGES["python3"].wrapper, base_env)


def started_fork_server(environ: Mapping[str, str]) -> ForkServer:
    """The CLI's fork server: this interpreter's, for steps started from `environ`, booting now
    while the caller goes on."""
    forks = python_fork_server(sys.executable, base_environment(environ))
    forks.start()
    return forks
