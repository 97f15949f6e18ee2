"""Names and Job manifests of step attempts: pure, checked without a cluster."""

from __future__ import annotations

import json

from millrace.cluster import names
from millrace.cluster.jobs import RunMeta, runtime_config_map, runtime_name, shared_claim, step_objects
from millrace.engine.actions import RunStep
from millrace.model.resources import Runtime


def meta(**kw: object) -> RunMeta:
    return RunMeta(namespace="ns", run="hello-run", run_uid="uid-1", flow="hello", api_url="http://api:8080", **kw)  # type: ignore[arg-type]


def action(path: str = "loop/3/inner", attempt: int = 2, language: str = "python3", timeout: float | None = None) -> RunStep:
    return RunStep(path=path, attempt=attempt, step_id=path.rsplit("/", 1)[-1], language=language,  # type: ignore[arg-type]
                   code="def main(x): return x", args={"x": 1}, timeout_s=timeout)


def test_one_secret_carries_the_steps_code_arguments_and_token() -> None:
    secret, job = step_objects(meta(), action(), "s3cr3t-token")
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == names.step_secret_name("hello-run", "loop/3/inner", 2)
    assert secret["metadata"]["labels"][names.LABEL_KIND] == "step"
    data = secret["stringData"]
    # The wrappers and the SDK are in the namespace's runtime ConfigMap, not copied into every step's.
    assert data == {"token": "s3cr3t-token", "files..main.py": "def main(x): return x", "files..args.json": '{"x": 1}'}
    runtime = runtime_config_map("ns")["data"]
    assert "wrappers..python3.py" in runtime and "wrappers..launch.sh" in runtime and "sdk..wmill.py" in runtime
    assert "s3cr3t-token" not in str(job)


def test_the_step_volume_projects_the_files_of_the_secret_but_not_the_token() -> None:
    secret, job = step_objects(meta(), action(), "tok")
    volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "step")
    from_secret, from_runtime = volume["projected"]["sources"]
    assert from_secret["secret"]["name"] == secret["metadata"]["name"]
    assert sorted(i["key"] for i in from_secret["secret"]["items"]) == sorted(set(secret["stringData"]) - {"token"})
    assert {"key": "files..args.json", "path": "files/args.json"} in from_secret["secret"]["items"]
    assert from_runtime["configMap"]["name"] == runtime_name()
    assert sorted(i["key"] for i in from_runtime["configMap"]["items"]) == sorted(runtime_config_map("ns")["data"])


def test_the_runtime_config_map_is_named_by_version_and_content_and_owned_by_no_run() -> None:
    runtime = runtime_config_map("ns")
    assert runtime["metadata"]["name"] == runtime_name() and runtime_name().startswith("millrace-runtime-")
    assert "ownerReferences" not in runtime["metadata"]
    assert runtime["metadata"]["labels"][names.LABEL_KIND] == "runtime"


def test_bash_arguments_come_from_a_file_of_the_secret_not_the_command() -> None:
    step = RunStep(path="greet", attempt=1, step_id="greet", language="bash", code='name="$1"\npw="$2"\necho "$name"',
                   args={"name": "a b", "pw": "hunter2"})
    secret, job = step_objects(meta(), step, "tok")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "hunter2" not in str(job)
    assert secret["stringData"]["files...millrace-args"] == "a b\0hunter2\0"
    assert container["command"][-4:] == ["bash", "-c", container["command"][-2], "/millrace/wrappers/bash.sh"]


def test_job_is_owned_labelled_restricted_and_never_retried_by_kubernetes() -> None:
    _, job = step_objects(meta(), action(timeout=2.5), "tok")
    assert job["metadata"]["name"] == names.job_name("hello-run", "loop/3/inner", 2)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "FlowRun"
    assert job["metadata"]["labels"][names.LABEL_RUN] == "hello-run"
    assert job["metadata"]["annotations"][names.ANNOTATION_STEP_PATH] == "loop/3/inner"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 3
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The root filesystem is read-only: /tmp is a writable emptyDir, and TMPDIR says so.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"name": "TMPDIR", "value": "/tmp"} in container["env"]
    assert container["image"] == "python:3.12-slim"
    assert container["command"][:3] == ["sh", "/millrace/wrappers/launch.sh", "/millrace"]
    assert "python3" in container["command"] and "/millrace/wrappers/python3.py" in container["command"]
    token_env = next(e for e in container["env"] if e["name"] == "MILLRACE_TOKEN")
    assert token_env["valueFrom"]["secretKeyRef"]["key"] == "token"


def test_runtime_settings_reach_the_pod() -> None:
    runtime = Runtime.model_validate({"images": {"python3": "my/python:1"}, "serviceAccountName": "steps",
                                      "nodeSelector": {"disk": "ssd"}, "resources": {"limits": {"memory": "256Mi"}},
                                      "tolerations": [{"key": "k", "operator": "Exists"}]})
    _, job = step_objects(meta(runtime=runtime, same_worker=True), action(), "tok")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "my/python:1"
    assert pod["serviceAccountName"] == "steps" and pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "256Mi"}}
    assert {"name": "shared", "mountPath": "/work/shared"} in pod["containers"][0]["volumeMounts"]
    claim = shared_claim(meta(runtime=runtime, same_worker=True))
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and claim["metadata"]["name"] == names.shared_claim_name("hello-run")


def test_typescript_steps_find_the_client_without_a_node_modules_folder() -> None:
    # A node_modules folder would turn off bun's auto-install: tsconfig paths name the client instead.
    secret, _ = step_objects(meta(), action(language="bun"), "tok")
    paths = json.loads(secret["stringData"]["files..tsconfig.json"])["compilerOptions"]["paths"]
    assert paths["windmill-client"] == ["/millrace/sdk/windmill-client/index.ts"] and paths["/f/*"] == ["./f/*"]
    assert not any("node_modules" in key for key in secret["stringData"])


def test_a_flow_security_context_is_laid_over_the_restricted_one() -> None:
    runtime = Runtime.model_validate({"securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_BIND_SERVICE"]}}})
    _, job = step_objects(meta(runtime=runtime), action(), "tok")
    security = job["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert security["runAsUser"] == 1000 and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}


def test_same_worker_pods_share_the_node_of_their_read_write_once_claim() -> None:
    pod = step_objects(meta(same_worker=True), action(), "tok")[1]["spec"]["template"]["spec"]
    term = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term == {"labelSelector": {"matchLabels": {names.LABEL_RUN: "hello-run"}}, "topologyKey": "kubernetes.io/hostname"}
    assert "nodeAffinity" not in pod["affinity"]  # the first pods may go anywhere
    pinned = step_objects(meta(same_worker=True, node="node-b"), action(), "tok")[1]["spec"]["template"]["spec"]
    required = pinned["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-b"]}]}]}
    many = Runtime.model_validate({"shared": {"accessMode": "ReadWriteMany"}})
    assert "affinity" not in step_objects(meta(same_worker=True, runtime=many, node="node-b"), action(), "tok")[1]["spec"]["template"]["spec"]
    assert "affinity" not in step_objects(meta(), action(), "tok")[1]["spec"]["template"]["spec"]


def test_a_python_step_that_needs_packages_mounts_the_configured_cache() -> None:
    cache = {"persistentVolumeClaim": {"claimName": "python-packages"}}
    needs = action().model_copy(update={"code": "import u.me.h\nimport tabulate\n", "modules": {"u/me/h.py": "X = 1\n"}})
    secret, job = step_objects(meta(python_cache=cache), needs, "tok")
    assert secret["stringData"]["files..requirements.txt"] == "tabulate\n"
    assert secret["stringData"]["files..u..me..h.py"] == "X = 1\n"
    items = job["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"][0]["secret"]["items"]
    assert {"key": "files..u..me..h.py", "path": "files/u/me/h.py"} in items
    pod = job["spec"]["template"]["spec"]
    assert {"name": "python-cache", **cache} in pod["volumes"]
    assert {"name": "python-cache", "mountPath": "/cache/python"} in pod["containers"][0]["volumeMounts"]
    assert {"name": "MILLRACE_PYTHON_CACHE", "value": "/cache/python"} in pod["containers"][0]["env"]
    # A step that installs nothing does not mount it; without the setting none does.
    for objects in (step_objects(meta(python_cache=cache), action(), "tok"), step_objects(meta(), needs, "tok")):
        assert all(v["name"] != "python-cache" for v in objects[1]["spec"]["template"]["spec"]["volumes"])


def test_a_program_step_runs_its_command_in_its_own_image_and_reports_from_the_bash_one() -> None:
    code = '# sandbox registry.example.com/tools/report:2\nname="$1"\npw="$2"\nreport-tool "$name"\n'
    step = RunStep(path="p", attempt=1, step_id="p", language="program", code=code, args={"name": "a b", "pw": "hunter2"})
    secret, job = step_objects(meta(), step, "tok")
    pod = job["spec"]["template"]["spec"]
    prepare, program = pod["initContainers"]
    [report] = pod["containers"]
    assert (prepare["image"], program["image"], report["image"]) == ("bash:5.2", "registry.example.com/tools/report:2", "bash:5.2")
    assert prepare["command"][-2:] == ["/millrace", "true"] and report["command"][-3:] == ["/millrace", "bash", "/millrace/wrappers/program.sh"]
    # Only the image's /bin/sh runs in the step's image; the arguments come from the Secret by position.
    assert program["command"] == ["/bin/sh", "/millrace/wrappers/program-run.sh"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in program["env"]}
    assert env["MILLRACE_ARGC"] == "2"
    assert env["MILLRACE_ARG_2"] == {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "arg-2"}}
    assert secret["stringData"]["arg-1"] == "a b" and secret["stringData"]["arg-2"] == "hunter2"
    assert "hunter2" not in str(job)
    assert secret["stringData"]["files..main.sh"] == code and "files..args.json" in secret["stringData"]
    assert program["volumeMounts"] == report["volumeMounts"] and program["securityContext"] == report["securityContext"]
