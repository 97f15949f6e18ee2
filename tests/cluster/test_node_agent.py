"""The test node agent runs pods as a kubelet would, for what millrace uses.

These tests also pass on a real cluster (kind): they only use the API.
"""

from __future__ import annotations

import json
import os
import time

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
    kube.apply(pod_manifest("slow", ["python3", "-c", "import time; print('started', flush=True); time.sleep(600)"],
                            activeDeadlineSeconds=2), namespace)
    p = kube.pod_phase(namespace, "slow", timeout=60)
    assert p["status"]["phase"] == "Failed"
    assert p["status"]["reason"] == "DeadlineExceeded"
    term = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] != 0


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
