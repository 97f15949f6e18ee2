#!/usr/bin/env python3
"""TEST DOUBLE: the container runtime's last step, for the test node agent.

The node agent starts every container process through this program, as
root.  It reads the container's settings from a JSON file and then, as a
container runtime would before it execs the container's command:

1. enters a private mount namespace (``unshare(CLONE_NEWNS)``, all mounts
   made private so nothing propagates back to the machine);
2. keeps the "image" visible: folders of this machine that stand for the
   image's programs (the interpreters, bun, deno) stay reachable at their
   own paths even when an ancestor folder is closed to the container's
   user (e.g. ``/root`` is mode 0700): a tmpfs is mounted over that
   ancestor, with only those folders bound back in, read-only;
3. with ``readOnlyRootFilesystem``, remounts every mount of the machine
   read-only (except /proc, /dev and /sys), so writing anywhere fails with
   EROFS; then bind-mounts the pod's volume folders (and the termination
   log) over themselves, writable or read-only as each volumeMount says.
   Without it, only the read-only volume mounts are made read-only.  Volumes
   whose mount path is a folder of this machine that the container does not
   otherwise need (e.g. /tmp) are also bound at that real path;
4. sets the supplementary groups, the group and the user (runAsUser,
   runAsGroup, fsGroup, supplementalGroups);
5. sets no_new_privs when ``allowPrivilegeEscalation`` is false;
6. changes to the working directory and execs the command.

Failures before the exec print ``node-container: ...`` on stderr (the
container's log) and exit with 128, the exit code a kubelet reports for a
container that could not start.

This file is test code, not part of the product.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
PR_SET_NO_NEW_PRIVS = 38
_OPTION_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                 "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
# Kernel file systems a container runtime mounts itself: left as they are.
_KEEP = ("/proc", "/dev", "/sys")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


class SetupError(Exception):
    pass


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def mounts() -> list[tuple[str, int]]:
    """(mount point, per-mount flags to keep) of this namespace, parents first."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = fields[4].encode().decode("unicode_escape")
        flags = 0
        for opt in fields[5].split(","):
            flags |= _OPTION_FLAGS.get(opt, 0)
        out.append((point, flags))
    return sorted(out, key=lambda m: m[0].count("/") if m[0] != "/" else 0)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def closed_ancestor(path: str, uid: int, gids: set[int]) -> str | None:
    """The first folder above `path` that `uid` may not traverse, if any."""
    p = Path(path)
    for folder in [*reversed(p.parents), p]:
        try:
            st = folder.stat()
        except OSError:
            return None
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid in gids:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return str(folder)
    return None


def expose(paths: list[str], uid: int, gids: set[int], stage: str) -> None:
    """Keep `paths` reachable for `uid` although an ancestor is closed to it."""
    by_ancestor: dict[str, list[str]] = {}
    for p in paths:
        top = closed_ancestor(p, uid, gids)
        if top and top != p:
            by_ancestor.setdefault(top, []).append(p)
    for n, (top, inner) in enumerate(sorted(by_ancestor.items())):
        held = []
        for i, p in enumerate(inner):
            spot = Path(stage, f"{n}-{i}")
            spot.mkdir(parents=True, exist_ok=True)
            mount(p, str(spot), None, MS_BIND | MS_REC)
            held.append((spot, p))
        mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        for spot, p in held:
            Path(p).mkdir(parents=True, exist_ok=True)
            mount(str(spot), p, None, MS_MOVE)
            mount(None, p, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        mount(None, top, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def bind(path: str, writable: bool) -> None:
    mount(path, path, None, MS_BIND)
    mount(None, path, None, MS_REMOUNT | MS_BIND | (0 if writable else MS_RDONLY))


def enter(spec: dict) -> None:
    uid = spec.get("uid")
    gid = spec.get("gid")
    groups = spec.get("groups") or []
    if spec.get("namespace"):
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        if uid:
            expose(spec.get("image_paths") or [], uid, {gid or 0, *groups}, spec["stage"])
        if spec.get("read_only_root"):
            for point, flags in mounts():
                if not any(_under(point, k) for k in _KEEP):
                    mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
            for path in spec.get("writable") or []:
                bind(path, True)
        for path in spec.get("read_only") or []:
            bind(path, False)
        for mount_path, source, writable in spec.get("at_mount_path") or []:
            mount(source, mount_path, None, MS_BIND)
            mount(None, mount_path, None, MS_REMOUNT | MS_BIND | (0 if writable else MS_RDONLY))
    if spec.get("no_new_privileges"):  # allowPrivilegeEscalation: false
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    if gid is not None or uid is not None or groups:
        os.setgroups(sorted(set(groups)))
        os.setgid(gid if gid is not None else 0)
    if uid is not None:
        os.setuid(uid)


def main() -> None:
    spec_file = Path(sys.argv[1])
    spec = json.loads(spec_file.read_text())
    spec_file.unlink()  # it holds the environment, secrets included
    try:
        enter(spec)
        os.chdir(spec["cwd"])
    except (SetupError, OSError) as e:
        print(f"node-container: {e}", file=sys.stderr, flush=True)
        os._exit(128)
    argv = spec["argv"]
    try:
        os.execve(argv[0], argv, spec["env"])
    except OSError as e:
        print(f"node-container: exec {argv[0]}: {e.strerror}", file=sys.stderr, flush=True)
        os._exit(128)


if __name__ == "__main__":
    main()
