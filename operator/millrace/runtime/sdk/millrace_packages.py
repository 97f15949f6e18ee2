"""Install a Python step's requirements into a cached folder, before the step runs.

Standard library only: the python3 wrapper calls this in the step's own
process, locally and in a pod. The folder is named by a hash of the
requirement lines, the interpreter's version and the machine, under
MILLRACE_PYTHON_CACHE: a second step asking for the same set finds it ready
and runs no installer. `uv` is used when there is one (MILLRACE_UV, PATH, or
beside the interpreter, as in a virtual environment that has it), else
`python -m pip`; both install with `--target` into a temporary folder that is
renamed into place once complete, under a file lock, so concurrent steps
neither install twice nor see a half-installed folder.
"""

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile

CACHE_ENV = "MILLRACE_PYTHON_CACHE"
UV_ENV = "MILLRACE_UV"
COMPLETE = ".millrace-complete"
OUTPUT_TAIL = 2000  # characters of the installer's output an error quotes


class InstallError(Exception):
    """The installer failed: its message and the end of its output."""


def cache_root() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(tempfile.gettempdir(), "millrace-python")


def folder_name(requirements: list) -> str:
    identity = "\n".join([sys.version.split()[0], platform.machine(), *requirements])
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


def installer(root: str, requirements_file: str, target: str) -> tuple:
    """(name, command, environment) of the installer to run."""
    env = dict(os.environ)
    uv = os.environ.get(UV_ENV) or shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
    if uv:
        env.setdefault("UV_CACHE_DIR", os.path.join(root, "uv-cache"))
        return "uv", [uv, "pip", "install", "--no-config", "--python", sys.executable, "--target", target,
                      "-r", requirements_file], env
    env.setdefault("PIP_CACHE_DIR", os.path.join(root, "pip-cache"))
    return "pip", [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                   "--no-warn-script-location", "--target", target, "-r", requirements_file], env


def install(requirements: list) -> str:
    """The folder holding `requirements`, installed now unless cached; InstallError if that fails."""
    root = cache_root()
    os.makedirs(root, exist_ok=True)
    target = os.path.join(root, folder_name(requirements))
    if os.path.exists(os.path.join(target, COMPLETE)):
        return target
    with open(target + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(target, COMPLETE)):
            return target  # another step installed it while this one waited
        staging = tempfile.mkdtemp(prefix=os.path.basename(target) + ".", dir=root)
        try:
            listed = os.path.join(staging, ".requirements.txt")
            with open(listed, "w", encoding="utf-8") as stream:
                stream.write("\n".join(requirements) + "\n")
            name, command, env = installer(root, listed, staging)
            done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace")
            if done.returncode != 0:
                raise InstallError(f"{name} exited with {done.returncode}:\n{done.stdout.strip()[-OUTPUT_TAIL:]}")
            open(os.path.join(staging, COMPLETE), "w").close()
            shutil.rmtree(target, ignore_errors=True)  # a folder left by an interrupted rename
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
