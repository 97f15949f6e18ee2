"""The test node agent runs pods as a kubelet would, for what millrace uses.

These tests also pass on a real cluster (kind): they only use the API.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .conftest import job_manifest, pod_manifest

pytestmark = pytest.mark.cluster

PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def _log_json(kube, ns, pod, container=None):
    return json.loads(kube.logs(ns, pod, container).strip().splitlines()[-1])


def test_env_from_values_configmaps_secrets_and_downward_api(kube, namespace):
    kube.apply([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
         "data": {"mode": "fast", "LEVEL": "3"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
         "stringData": {"password": "s3cret", "TOKEN": "abc"}},
    ], namespace)
    pod = pod_manifest("env", ["python3", "-c", PRINT_ENV], container={
        "env": [
            {"name": "GREETING", "value": "hello"},
            {"name": "EXPANDED", "value": "$(GREETING) world $$(GREETING)"},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope",
                                                               "optional": True}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "RUN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['millrace.dev/run']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                  "divisor": "1Mi"}}},
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CM_"},
                    {"secretRef": {"name": "creds"}}],
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
    })
    pod["metadata"]["labels"] = {"millrace.dev/run": "run-7"}
    kube.apply(pod, namespace)
    p = kube.pod_phase(namespace, "env")
    assert p["status"]["phase"] == "Succeeded", p["status"]
    env = _log_json(kube, namespace, "env")
    assert env["GREETING"] == "hello"
    assert env["EXPANDED"] == "hello world $(GREETING)"
    assert env["MODE"] == "fast" and env["PASSWORD"] == "s3cret" and "MISSING" not in env
    assert env["POD_NAME"] == "env" and env["POD_NAMESPACE"] == namespace
    assert env["POD_UID"] == p["metadata"]["uid"]
    assert env["RUN"] == "run-7"
    assert env["NODE"] == p["spec"]["nodeName"] and env["SA"] == "default"
    assert env["POD_IP"] == p["status"]["podIP"]
    assert env["MEM_MI"] == "64"
    assert env["CM_mode"] == "fast" and env["CM_LEVEL"] == "3" and env["TOKEN"] == "abc"
    assert env["KUBERNETES_SERVICE_HOST"] and env["KUBERNETES_SERVICE_PORT"]


def test_missing_secret_key_keeps_the_pod_from_starting(kube, namespace):
    kube.apply(pod_manifest("nokey", ["python3", "-c", "print('ran')"], container={
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]}), namespace)
    def waiting():
        p = kube.get("pod", "nokey", namespace)
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            w = cs.get("state", {}).get("waiting") or {}
            t = cs.get("state", {}).get("terminated") or {}
            if w.get("reason") == "CreateContainerConfigError" or t.get("reason") == "CreateContainerConfigError":
                return cs
        return None
    if kube.target != "local":
        pytest.skip("a kubelet retries for minutes; the agent's give-up time is its own")
    assert kube.wait_for(waiting, 180, "CreateContainerConfigError")


def test_a_listed_key_the_secret_lacks_keeps_the_pod_from_mounting_it(kube, namespace):
    """As a kubelet: every item a Secret volume lists must be in the Secret, unless it is optional."""
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "partial"}, "stringData": {"here": "1"}},
               namespace)
    items = [{"key": "here", "path": "here"}, {"key": "gone", "path": "gone"}]

    def pod(name, optional):
        source = {"secret": {"name": "partial", "items": items, "optional": optional}}
        return pod_manifest(name, ["python3", "-c", "import os; print(sorted(os.listdir('/etc/p')))"],
                            container={"volumeMounts": [{"name": "p", "mountPath": "/etc/p"}]},
                            volumes=[{"name": "p", "projected": {"sources": [source]}}])
    if kube.target != "local":
        pytest.skip("a kubelet tells this in events only; the agent's container status is its own")
    kube.apply(pod("lenient", True), namespace)
    assert kube.pod_phase(namespace, "lenient")["status"]["phase"] == "Succeeded"
    assert kube.logs(namespace, "lenient").strip() == "['here']"
    kube.apply(pod("strict", False), namespace)

    def mount_waits():
        statuses = (kube.get("pod", "strict", namespace).get("status") or {}).get("containerStatuses") or []
        waiting = (statuses[0].get("state") or {}).get("waiting") or {} if statuses else {}
        return waiting if '"gone"' in waiting.get("message", "") else None
    assert kube.wait_for(mount_waits, 60, "the pod to wait for the Secret's key")["reason"] == "ContainerCreating"
    assert kube.get("pod", "strict", namespace)["status"]["phase"] == "Pending"


def test_volumes_configmap_secret_emptydir_downward_and_working_dir(kube, namespace):
    kube.apply([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "code"},
         "data": {"main.py": "print('from configmap')\n", "other.txt": "x"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"}, "stringData": {"key": "k-1"}},
    ], namespace)
    check = (
        "import json, os, subprocess, sys\n"
        "out = {}\n"
        "out['cwd_files'] = sorted(os.listdir('.'))\n"
        "out['code'] = subprocess.run([sys.executable, '/opt/code/run.py'], capture_output=True, text=True).stdout\n"
        "out['secret'] = open('/etc/keys/key').read()\n"
        "out['init'] = open('/scratch/from-init').read()\n"
        "out['labels'] = open('/etc/podinfo/labels').read()\n"
        "out['name'] = open('/etc/podinfo/name').read()\n"
        "open('relative.txt', 'w').write('in working dir')\n"
        "out['relative'] = open('/work/dir/relative.txt').read()\n"
        "print(json.dumps(out))\n"
    )
    pod = pod_manifest("vols", ["python3", "-c", check], container={
        "workingDir": "/work/dir",
        "volumeMounts": [
            {"name": "code", "mountPath": "/opt/code"},
            {"name": "keys", "mountPath": "/etc/keys", "readOnly": True},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "podinfo", "mountPath": "/etc/podinfo"},
        ]},
        initContainers=[{"name": "init", "image": "busybox", "command": [
            "sh", "-c", "echo -n prepared > /scratch/from-init"],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
        volumes=[
            {"name": "code", "configMap": {"name": "code", "items": [{"key": "main.py", "path": "run.py"}]}},
            {"name": "keys", "secret": {"secretName": "keys"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "podinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        ])
    pod["metadata"]["labels"] = {"app": "vols"}
    kube.apply(pod, namespace)
    p = kube.pod_phase(namespace, "vols")
    assert p["status"]["phase"] == "Succeeded", p["status"]
    init = p["status"]["initContainerStatuses"][0]["state"]["terminated"]
    assert init["exitCode"] == 0
    out = _log_json(kube, namespace, "vols")
    assert out["code"] == "from configmap\n"
    assert out["secret"] == "k-1"
    assert out["init"] == "prepared"
    assert out["labels"] == 'app="vols"'
    assert out["name"] == "vols"
    assert out["relative"] == "in working dir"


def test_a_claim_is_one_folder_shared_by_the_pods_that_mount_it(kube, namespace):
    kube.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shared"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
               namespace)
    vol = {"volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}]}
    mount = {"volumeMounts": [{"name": "shared", "mountPath": "/work/shared"}], "workingDir": "/work"}
    kube.apply(job_manifest("writer", ["python3", "-c",
                                       "open('shared/result.json', 'w').write('[1, 2, 3]')"],
                            container=mount, **vol), namespace)
    assert kube.job_condition(namespace, "writer") == "Complete"
    kube.apply(job_manifest("reader", ["python3", "-c",
                                       "print(sum(__import__('json').load(open('/work/shared/result.json'))))"],
                            container=mount, **vol), namespace)
    assert kube.job_condition(namespace, "reader") == "Complete"
    assert kube.logs(namespace, "job/reader").strip() == "6"


def test_claims_are_provisioned_bound_and_released(kube, namespace):
    kube.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}},
               namespace)
    pvc = kube.wait_for(lambda: (lambda c: c if (c.get("status") or {}).get("phase") == "Bound" else None)(
        kube.get("pvc", "data", namespace)), 60, "the claim to be Bound")
    assert pvc["spec"]["storageClassName"]  # the default StorageClass was applied
    assert pvc["status"]["capacity"]["storage"] == "2Gi"
    pv = pvc["spec"]["volumeName"]
    kube.kubectl("delete", "pvc", "data", "-n", namespace)
    kube.wait_for(lambda: kube.get("pv", pv) is None, 60, "the volume to be deleted with its claim")


def test_active_deadline_seconds_fails_the_pod(kube, namespace):
    marker = f"MILLRACE_TEST_MARKER={namespace}"
    kube.apply(pod_manifest("slow", ["python3", "-c", "import time; time.sleep(600)"], activeDeadlineSeconds=2,
                            container={"env": [{"name": "MILLRACE_TEST_MARKER", "value": namespace}]}), namespace)
    p = kube.pod_phase(namespace, "slow", timeout=60)
    assert p["status"]["phase"] == "Failed"
    assert p["status"]["reason"] == "DeadlineExceeded"
    term = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] != 0
    if kube.target == "local":  # the process is gone, not just reported
        assert not _processes_with(marker)


def _processes_with(env_entry: str) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if env_entry.encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_job_active_deadline_kills_its_pod(kube, namespace):
    kube.apply(job_manifest("limited", ["python3", "-c", "import time; time.sleep(600)"]), namespace)
    job = kube.get("job", "limited", namespace)
    job["spec"]["activeDeadlineSeconds"] = 3
    kube.kubectl("patch", "job", "limited", "-n", namespace, "--type=merge",
                 "-p", '{"spec": {"activeDeadlineSeconds": 3}}')
    assert kube.job_condition(namespace, "limited", timeout=90) == "Failed"
    failed = next(c for c in kube.get("job", "limited", namespace)["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    kube.wait_for(lambda: all((p.get("status") or {}).get("phase") in ("Failed", "Succeeded")
                              for p in kube.list("pods", namespace, "job-name=limited")) or
                  not kube.list("pods", namespace, "job-name=limited"), 60, "the Job's pod to stop")


def test_deleting_a_pod_kills_its_process(kube, namespace):
    kube.apply(pod_manifest("sleeper", ["python3", "-c",
                                        "import os, time; print(os.getpid(), flush=True); time.sleep(600)"],
                            terminationGracePeriodSeconds=5), namespace)
    kube.wait_for(lambda: (kube.get("pod", "sleeper", namespace).get("status") or {}).get("phase") == "Running",
                  60, "the pod to run")
    pid = int(kube.wait_for(lambda: kube.logs(namespace, "sleeper").strip(), 30, "the pid in the log"))
    t0 = time.monotonic()
    kube.kubectl("delete", "pod", "sleeper", "-n", namespace, "--wait=true", timeout=60)
    assert time.monotonic() - t0 < 15
    assert kube.get("pod", "sleeper", namespace) is None
    if kube.target == "local":
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_restart_policy_on_failure_restarts_the_container(kube, namespace):
    script = ("import os, sys\n"
              "if not os.path.exists('/state/tried'):\n"
              "    open('/state/tried', 'w').close(); sys.exit(1)\n"
              "print('second try')\n")
    kube.apply(pod_manifest("retry", ["python3", "-c", script], restart="OnFailure",
                            container={"volumeMounts": [{"name": "state", "mountPath": "/state"}]},
                            volumes=[{"name": "state", "emptyDir": {}}]), namespace)
    p = kube.pod_phase(namespace, "retry", timeout=60)
    assert p["status"]["phase"] == "Succeeded"
    cs = p["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert kube.logs(namespace, "retry").strip() == "second try"


def test_termination_message_falls_back_to_the_log(kube, namespace):
    kube.apply(pod_manifest("fallback", ["python3", "-c", "print('last words'); raise SystemExit(2)"],
                            container={"terminationMessagePolicy": "FallbackToLogsOnError"}), namespace)
    p = kube.pod_phase(namespace, "fallback")
    term = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 2 and "last words" in term["message"]


def test_pod_calls_the_api_as_its_service_account(kube, namespace):
    kube.apply([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "step"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "step"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "step"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "step"},
         "subjects": [{"kind": "ServiceAccount", "name": "step", "namespace": namespace}]},
    ], namespace)
    # In-cluster style: token, CA and namespace from the standard mount path.
    script = (
        "import json, os, ssl, urllib.request, urllib.error\n"
        "d = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "token = open(d + '/token').read(); ns = open(d + '/namespace').read()\n"
        "ctx = ssl.create_default_context(cafile=d + '/ca.crt')\n"
        "base = 'https://%s:%s' % (os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT'])\n"
        "out = {'ns': ns}\n"
        "for what in ('configmaps', 'secrets'):\n"
        "    req = urllib.request.Request(base + '/api/v1/namespaces/%s/%s' % (ns, what),\n"
        "                                 headers={'Authorization': 'Bearer ' + token})\n"
        "    try:\n"
        "        out[what] = urllib.request.urlopen(req, context=ctx).status\n"
        "    except urllib.error.HTTPError as e:\n"
        "        out[what] = e.code\n"
        "print(json.dumps(out))\n"
    )
    kube.apply(pod_manifest("as-sa", ["python3", "-c", script], serviceAccountName="step"), namespace)
    p = kube.pod_phase(namespace, "as-sa")
    assert p["status"]["phase"] == "Succeeded", kube.logs(namespace, "as-sa")
    assert _log_json(kube, namespace, "as-sa") == {"ns": namespace, "configmaps": 200, "secrets": 403}


def test_service_links_and_pods_reach_each_other_on_loopback(kube, namespace):
    if kube.target != "local":
        pytest.skip("on a real cluster Services have their own IPs")
    server = ("import http.server, socketserver\n"
              "class H(http.server.BaseHTTPRequestHandler):\n"
              "    def do_GET(self):\n"
              "        self.send_response(200); self.end_headers(); self.wfile.write(b'pong')\n"
              "    def log_message(self, *a): pass\n"
              "socketserver.TCPServer.allow_reuse_address = True\n"
              "http.server.HTTPServer(('127.0.0.1', 0), H)\n")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server.replace("('127.0.0.1', 0), H)", f"('127.0.0.1', {port}), H).serve_forever()")
    kube.apply([
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "step-api"},
         "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": port}]}},
        {**pod_manifest("api", ["python3", "-c", server], restart="Always"),
         "metadata": {"name": "api", "labels": {"app": "api"}}},
    ], namespace)
    client = ("import os, time, urllib.request\n"
              "url = 'http://%s:%s/' % (os.environ['STEP_API_SERVICE_HOST'], os.environ['STEP_API_SERVICE_PORT'])\n"
              "for _ in range(100):\n"
              "    try:\n"
              "        print(urllib.request.urlopen(url).read().decode()); break\n"
              "    except OSError:\n"
              "        time.sleep(0.1)\n")
    kube.apply(pod_manifest("client", ["python3", "-c", client]), namespace)
    assert kube.pod_phase(namespace, "client")["status"]["phase"] == "Succeeded"
    assert kube.logs(namespace, "client").strip() == "pong"


def test_kubectl_logs_follow_streams_until_the_container_exits(kube, namespace):
    kube.apply(pod_manifest("talker", ["python3", "-c",
                                       "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.5)"]),
               namespace)
    kube.wait_for(lambda: (kube.get("pod", "talker", namespace).get("status") or {}).get("phase")
                  in ("Running", "Succeeded"), 60, "the pod to start")
    out = kube.kubectl("logs", "-f", "talker", "-n", namespace, timeout=60).stdout
    assert out.split() == ["0", "1", "2"]


def test_each_container_keeps_its_log_file(kube, namespace):
    kube.apply(pod_manifest("two", ["python3", "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                            initContainers=[{"name": "prep", "image": "busybox",
                                             "command": ["sh", "-c", "echo prepping"]}]), namespace)
    assert kube.pod_phase(namespace, "two")["status"]["phase"] == "Succeeded"
    assert kube.log_file(namespace, "two", "prep").read_text() == "prepping\n"
    assert sorted(kube.log_file(namespace, "two", "main").read_text().split()) == ["err", "out"]
    assert kube.logs(namespace, "two", "prep").strip() == "prepping"


def test_host_paths_under_a_mount_path_are_left_alone(kube, namespace):
    """A pod that mounts, say, /tmp while this machine's files (the agent's
    folders, the venv) live under /tmp: only the pod's own paths move."""
    if kube.target != "local":
        pytest.skip("about the local node agent's path mapping")
    from pathlib import Path
    node_dir = Path(kube.info["node_dir"]).resolve()
    top = "/" + node_dir.parts[1]
    script = ("import json, os, sys\n"
              f"open('{top}/probe.txt', 'w').write('mine')\n"
              "print(json.dumps({'kubeconfig': os.path.exists(os.environ.get('KUBECONFIG', '/nonexistent')),\n"
              "                  'arg': sys.argv[1], 'arg_is_dir': os.path.isdir(sys.argv[1]),\n"
              f"                  'probe': open('{top}/probe.txt').read(),\n"
              f"                  'host_probe': os.path.exists('{top}/probe.txt') and\n"
              f"                                os.path.realpath('{top}/probe.txt') == '{top}/probe.txt'}}))\n")
    kube.apply(pod_manifest("shadow", ["python3", "-c", script, str(node_dir)], container={
        "volumeMounts": [{"name": "scratch", "mountPath": top}]},
        volumes=[{"name": "scratch", "emptyDir": {}}]), namespace)
    p = kube.pod_phase(namespace, "shadow")
    assert p["status"]["phase"] == "Succeeded", kube.logs(namespace, "shadow")
    out = _log_json(kube, namespace, "shadow")
    assert out["kubeconfig"] and out["arg"] == str(node_dir) and out["arg_is_dir"]
    assert out["probe"] == "mine" and not out["host_probe"]
    assert not Path(top, "probe.txt").exists()


IDENTITY = ("import json, os\n"
            "open('/scratch/%s' % os.environ['NAME'], 'w').write('written')\n"
            "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'groups': sorted(os.getgroups()),\n"
            "                  'owner': os.stat('/scratch/%s' % os.environ['NAME']).st_uid}))\n")


def test_containers_run_as_the_user_and_groups_of_their_security_context(kube, namespace):
    """The pod's runAsUser/runAsGroup apply unless the container sets its own;
    fsGroup and supplementalGroups are supplementary groups."""
    def container(name, **security):
        return {"name": name, "image": "python:3.12-slim", "command": ["python3", "-c", IDENTITY],
                "env": [{"name": "NAME", "value": name}], "securityContext": security,
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}
    pod = pod_manifest("who", ["true"], securityContext={
        "runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 3000, "supplementalGroups": [4000]},
        volumes=[{"name": "scratch", "emptyDir": {}}])
    pod["spec"]["containers"] = [container("pod-level"), container("own", runAsUser=1001, runAsGroup=2001)]
    kube.apply(pod, namespace)
    p = kube.pod_phase(namespace, "who")
    assert p["status"]["phase"] == "Succeeded", kube.logs(namespace, "who", "pod-level")
    assert _log_json(kube, namespace, "who", "pod-level") == {
        "uid": 1000, "gid": 2000, "groups": [3000, 4000], "owner": 1000}
    assert _log_json(kube, namespace, "who", "own") == {"uid": 1001, "gid": 2001, "groups": [3000, 4000], "owner": 1001}


def _waiting(kube, namespace, pod):
    def reason():
        p = kube.get("pod", pod, namespace) or {}
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            w = cs.get("state", {}).get("waiting") or {}
            if w.get("reason") == "CreateContainerConfigError":
                return w
        return None
    return kube.wait_for(reason, 60, f"{pod} in CreateContainerConfigError")


def test_run_as_non_root_refuses_a_container_that_would_run_as_root(kube, namespace):
    """Images are taken to run as root: runAsNonRoot needs a non-zero runAsUser."""
    kube.apply(pod_manifest("no-user", ["python3", "-c", "print('ran')"],
                            securityContext={"runAsNonRoot": True}), namespace)
    kube.apply(pod_manifest("root-user", ["python3", "-c", "print('ran')"],
                            securityContext={"runAsNonRoot": True, "runAsUser": 0}), namespace)
    assert "container has runAsNonRoot and image will run as root" in _waiting(kube, namespace, "no-user")["message"]
    assert "container's runAsUser breaks non-root policy" in _waiting(kube, namespace, "root-user")["message"]
    for pod in ("no-user", "root-user"):
        assert kube.get("pod", pod, namespace)["status"]["phase"] == "Pending"


WRITES = ("import errno, json, os, sys\n"
          "out = []\n"
          "for path in sys.argv[1:]:  # mount paths arrive mapped: the results are in order\n"
          "    try:\n"
          "        open(path, 'w').write('x'); out.append('ok')\n"
          "    except OSError as e:\n"
          "        out.append(errno.errorcode[e.errno])\n"
          "print(json.dumps(out))\n")


def test_a_read_only_root_filesystem_leaves_only_the_pods_volumes_writable(kube, namespace):
    """readOnlyRootFilesystem: writing outside a volume fails with EROFS (even
    as root); emptyDir and claims are writable unless mounted readOnly;
    ConfigMap and Secret volumes are always read-only, as a kubelet mounts them."""
    kube.apply([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    ], namespace)
    paths = ["/probe", "/tmp/probe", "/usr/probe", "/scratch/probe", "/data/probe", "/frozen/probe", "/etc/cfg/probe"]
    mounts = [{"name": "scratch", "mountPath": "/scratch"}, {"name": "data", "mountPath": "/data"},
              {"name": "scratch", "mountPath": "/frozen", "subPath": "frozen", "readOnly": True},
              {"name": "cfg", "mountPath": "/etc/cfg"}]
    volumes = [{"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}},
               {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    kube.apply(pod_manifest("ro", ["python3", "-c", WRITES, *paths], container={
        "securityContext": {"readOnlyRootFilesystem": True}, "volumeMounts": mounts}, volumes=volumes), namespace)
    kube.apply(pod_manifest("rw", ["python3", "-c", WRITES, "/scratch/probe", "/frozen/probe", "/etc/cfg/probe"],
                            container={"volumeMounts": mounts}, volumes=volumes), namespace)
    assert kube.pod_phase(namespace, "ro", timeout=90)["status"]["phase"] == "Succeeded", kube.logs(namespace, "ro")
    assert dict(zip(paths, _log_json(kube, namespace, "ro"))) == {
        "/probe": "EROFS", "/tmp/probe": "EROFS", "/usr/probe": "EROFS", "/scratch/probe": "ok", "/data/probe": "ok",
        "/frozen/probe": "EROFS", "/etc/cfg/probe": "EROFS"}
    assert kube.pod_phase(namespace, "rw", timeout=90)["status"]["phase"] == "Succeeded", kube.logs(namespace, "rw")
    assert _log_json(kube, namespace, "rw") == ["ok", "EROFS", "EROFS"]
    if kube.target == "local":
        assert not os.path.exists("/probe") and not os.path.exists("/tmp/probe")


def test_a_restricted_step_pod_runs_the_interpreters_and_writes_its_volumes(kube, namespace):
    """What a step pod asks for: non-root, read-only root, no privilege
    escalation, fsGroup; its programs (python3, bash, bun, deno) still run."""
    script = ("set -e; cd /work; python3 -c 'import os; print(os.getuid())' > uid; "
              "bun --version > /dev/null; deno --version > /dev/null; "
              "echo shared > /work/shared/file; cat uid; "
              "grep NoNewPrivs /proc/self/status")
    kube.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shared"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}, namespace)
    kube.apply(pod_manifest("step", ["bash", "-c", script], container={
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True},
        "env": [{"name": "HOME", "value": "/work"}],
        "volumeMounts": [{"name": "work", "mountPath": "/work"}, {"name": "shared", "mountPath": "/work/shared"}]},
        securityContext={"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
        volumes=[{"name": "work", "emptyDir": {}}, {"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}]),
        namespace)
    p = kube.pod_phase(namespace, "step", timeout=90)
    assert p["status"]["phase"] == "Succeeded", kube.logs(namespace, "step")
    assert kube.logs(namespace, "step").split() == ["65532", "NoNewPrivs:", "1"]


def _node_of(kube, namespace, pod):
    return kube.wait_for(lambda: (kube.get("pod", pod, namespace) or {}).get("spec", {}).get("nodeName"),
                         60, f"{pod} to be scheduled")


def _nodes(kube):
    return sorted(n["metadata"]["name"] for n in json.loads(kube.kubectl("get", "nodes", "-o", "json").stdout)["items"])


def test_pods_are_scheduled_over_two_nodes_as_their_affinity_says(kube, namespace):
    nodes = _nodes(kube)
    assert len(nodes) >= 2
    first, second = nodes[:2]
    hello = ["python3", "-c", "print('hi')"]
    kube.apply([
        pod_manifest("by-selector", hello, nodeSelector={"kubernetes.io/hostname": second}),
        pod_manifest("by-affinity", hello, affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [first]}]}]}}}),
        pod_manifest("nowhere", hello, nodeSelector={"kubernetes.io/hostname": "no-such-node"}),
    ], namespace)
    assert _node_of(kube, namespace, "by-selector") == second
    assert _node_of(kube, namespace, "by-affinity") == first
    # Unscheduled pods are spread: ties between nodes are broken in turn.
    kube.apply([pod_manifest(f"free-{i}", hello) for i in range(4)], namespace)
    assert {_node_of(kube, namespace, f"free-{i}") for i in range(4)} == {first, second}

    def unschedulable():
        conds = (kube.get("pod", "nowhere", namespace).get("status") or {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"), None)
    cond = kube.wait_for(unschedulable, 60, "nowhere to be reported unschedulable")
    assert cond["reason"] == "Unschedulable" and "didn't match Pod's node affinity/selector" in cond["message"]
    assert not kube.get("pod", "nowhere", namespace)["spec"].get("nodeName")


def test_pod_affinity_puts_a_group_on_one_node(kube, namespace):
    """The first pod of a group goes anywhere (it matches its own term), the
    others join it, as kube-scheduler does."""
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"group": "g"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    pods = []
    for i in range(4):
        pod = pod_manifest(f"member-{i}", ["python3", "-c", "import time; time.sleep(600)"], affinity=affinity)
        pod["metadata"]["labels"] = {"group": "g"}
        pods.append(pod)
    kube.apply(pods, namespace)
    assert len({_node_of(kube, namespace, f"member-{i}") for i in range(4)}) == 1


def test_a_read_write_once_claim_is_used_by_one_node_at_a_time(kube, namespace):
    """Pods of one node share a ReadWriteOnce claim at once; a pod of another
    node waits (Pending, a Multi-Attach event) until the claim is free."""
    first, second = _nodes(kube)[:2]
    kube.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "rwo"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}, namespace)
    vol = {"volumes": [{"name": "rwo", "persistentVolumeClaim": {"claimName": "rwo"}}]}
    mount = {"volumeMounts": [{"name": "rwo", "mountPath": "/data"}]}
    holder = ("import os, time\n"
              "open('/data/from-holder', 'w').write('held')\n"
              "while not os.path.exists('/data/release'):\n"
              "    time.sleep(0.1)\n")
    kube.apply(pod_manifest("holder", ["python3", "-c", holder], container=mount,
                            nodeSelector={"kubernetes.io/hostname": first}, **vol), namespace)
    kube.wait_for(lambda: (kube.get("pod", "holder", namespace).get("status") or {}).get("phase") == "Running",
                  60, "the holder to run")
    kube.apply(pod_manifest("other-node", ["python3", "-c", "print(open('/data/from-holder').read())"], container=mount,
                            nodeSelector={"kubernetes.io/hostname": second}, **vol), namespace)

    def multi_attach():
        events = kube.list("events", namespace)
        return next((e for e in events if e["involvedObject"]["name"] == "other-node"
                     and e["reason"] == "FailedAttachVolume"), None)
    event = kube.wait_for(multi_attach, 60, "a Multi-Attach event for the pod of the other node")
    assert event["type"] == "Warning" and "Multi-Attach error" in event["message"] and "holder" in event["message"]
    waiting = kube.get("pod", "other-node", namespace)
    assert waiting["status"]["phase"] == "Pending"
    assert waiting["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    # A pod of the holder's node uses the claim at the same time.
    kube.apply(pod_manifest("same-node", ["python3", "-c", "open('/data/release', 'w').write('go')"], container=mount,
                            nodeSelector={"kubernetes.io/hostname": first}, **vol), namespace)
    assert kube.pod_phase(namespace, "same-node")["status"]["phase"] == "Succeeded"
    held = kube.pod_phase(namespace, "holder")
    assert held["status"]["phase"] == "Succeeded"
    moved = kube.pod_phase(namespace, "other-node", timeout=90)
    assert moved["status"]["phase"] == "Succeeded"
    assert kube.logs(namespace, "other-node").strip() == "held"
    finished = held["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    assert moved["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"] >= finished


def test_a_volume_over_a_folder_of_the_machine_is_at_its_real_path(kube, namespace):
    """A program that uses /tmp without being told (mktemp, no TMPDIR) finds the
    pod's /tmp volume there, and the read-only root elsewhere."""
    script = ("set -e; f=$(mktemp); echo made > \"$f\"; ls /tmp | wc -l; "
              "if touch /var/probe 2>/dev/null; then echo var-writable; else echo var-read-only; fi")
    kube.apply(pod_manifest("tmp", ["bash", "-c", script], container={
        "securityContext": {"readOnlyRootFilesystem": True}, "env": [{"name": "TMPDIR", "value": ""}],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]},
        securityContext={"runAsUser": 1000, "fsGroup": 1000}, volumes=[{"name": "tmp", "emptyDir": {}}]), namespace)
    p = kube.pod_phase(namespace, "tmp", timeout=90)
    assert p["status"]["phase"] == "Succeeded", kube.logs(namespace, "tmp")
    assert kube.logs(namespace, "tmp").split() == ["1", "var-read-only"]
