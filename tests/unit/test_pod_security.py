"""Every pod AdapterOps creates (trial Job, JobSet, PyTorchJob master and workers, serving Deployment with
its adapter-fetch init container) passes the restricted Pod Security Standard, mounts no ServiceAccount
token, bounds every emptyDir and runs each container as its image role's configured user.

The profile's rules are in restricted_profile.py, written from the standard; the first tests show that
check fails the pods it must fail."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from restricted_profile import containers, violations

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.config import CONTAINER_USERS, Config, ConfigError, GpuClass
from adapterops.deploy import builders as serving
from adapterops.finetune import builders as trials
from adapterops.finetune.plan import plan

CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "adapterops" / "values.yaml"
H100 = GpuClass.model_validate(
    {
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "pricePerHour": 4.5,
        "memoryGiB": 80,
    }
)
CONFIG = Config(gpu_classes={"H100": H100})
FTJ: dict[str, Any] = {
    "apiVersion": "adapterops.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "sweep", "namespace": "ml", "uid": "1234"},
}
MD: dict[str, Any] = {
    "apiVersion": "adapterops.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "agent", "namespace": "ml", "uid": "5678"},
}


def ftj_spec(**extra: Any) -> FineTuneJobSpec:
    doc: dict[str, Any] = {
        "baseModel": {"name": "tiny", "uri": "pvc://models/tiny"},
        "method": "sft",
        "dataset": {"train": "pvc://data/train.jsonl"},
        "training": {"maxSteps": 10},
        "objective": {"metric": "validationLoss", "goal": "minimize"},
        "output": {"uri": "pvc://adapters/runs"},
        "resources": {"gpuType": "H100", "gpusPerTrial": 2},
        "sweep": {"parameters": {"training.learningRate": {"values": [1e-4, 2e-4]}}},
        **extra,
    }
    return FineTuneJobSpec.model_validate(doc)


def md_spec(**runtime: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "baseModel": {"name": "tiny", "uri": "pvc://models/tiny"},
            "runtime": {"gpuType": "H100", **runtime},
            "adapters": [{"name": "commerce", "uri": "pvc://work/adapters/t03"}],
            "storageSecretRef": {"name": "s3-creds"},
        }
    )


def trial_job(config: Config = CONFIG, **extra: Any) -> dict[str, Any]:
    s = ftj_spec(**extra)
    template: dict[str, Any] = trials.trial_job(FTJ, plan("sweep", s)[0], s, config)["spec"]["template"]
    return template


def jobset(config: Config = CONFIG) -> dict[str, Any]:
    s = ftj_spec(resources={"gpuType": "H100", "gpusPerTrial": 8, "nodes": 2})
    obj = trials.trial_jobset(FTJ, plan("sweep", s)[0], s, config)
    template: dict[str, Any] = obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    return template


def pytorchjob(replica: str, config: Config = CONFIG) -> dict[str, Any]:
    s = ftj_spec(resources={"gpuType": "H100", "gpusPerTrial": 8, "nodes": 3}, backend="hf")
    obj = trials.trial_pytorchjob(FTJ, plan("sweep", s)[0], s, config)
    template: dict[str, Any] = obj["spec"]["pytorchReplicaSpecs"][replica]["template"]
    return template


def serving_pod(config: Config = CONFIG, adapters: bool = True, **runtime: Any) -> dict[str, Any]:
    found = {"commerce": "pvc://work/adapters/t03", "search": "s3://adapters/t01"} if adapters else {}
    deployment = serving.revision_deployment(MD, md_spec(**runtime), found, "abc123", 2, config)
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


JUDGE = {
    "dataset": "pvc://data/c.jsonl",
    "judge": {"endpoint": "http://j/v1", "model": "m", "apiKeySecretRef": {"name": "judge", "key": "token"}},
}
# Every kind of pod AdapterOps creates, in the variants that change its volumes, containers or users.
POD_KINDS: dict[str, Callable[[Config], dict[str, Any]]] = {
    "trial-job-nemo": lambda c: trial_job(c),
    "trial-job-hf": lambda c: trial_job(c, backend="hf"),
    "trial-job-dpo": lambda c: trial_job(
        c, method="dpo", dataset={"train": "pvc://data/pairs.jsonl", "format": "preference"}
    ),
    "trial-job-secrets-and-identity": lambda c: trial_job(
        c,
        objective={"metric": "judgeScore", "goal": "maximize"},
        evaluation=JUDGE,
        storageSecretRef={"name": "s3-creds"},
        serviceAccountName="workload-identity",
        output={"uri": "s3://bucket/adapters"},
    ),
    "trial-jobset": jobset,
    "trial-pytorchjob-master": lambda c: pytorchjob("Master", c),
    "trial-pytorchjob-worker": lambda c: pytorchjob("Worker", c),
    "serving-nim": lambda c: serving_pod(c, apiKeySecretRef={"name": "ngc", "key": "key"}),
    "serving-nim-tp4-no-adapters": lambda c: serving_pod(c, adapters=False, tensorParallelSize=4),
    "serving-vllm": lambda c: serving_pod(c, engine="vllm", imagePullSecrets=[{"name": "registry"}]),
}


def role_of(kind: str, container: str) -> str:
    if container == "fetch-adapters":
        return "fetcher"
    if kind.startswith("serving-"):
        return kind.split("-")[1]
    nemo = ("trial-job-nemo", "trial-job-secrets-and-identity", "trial-jobset")  # backend nemo, the default
    return "trainerNemo" if kind in nemo else "trainerHf"


# --------------------------------------------------------------------------- the check itself


def compliant() -> dict[str, Any]:
    return {
        "metadata": {},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "c",
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
            "volumes": [{"name": "v", "emptyDir": {}}],
        },
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(pod: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = pod
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        key: Any = int(last) if isinstance(node, list) else last
        if value is None:
            del node[key]
        else:
            node[key] = value

    return apply


@pytest.mark.parametrize(
    ("break_it", "control"),
    [
        (_set("spec.securityContext.runAsNonRoot", None), "Running as Non-root:"),
        (_set("spec.containers.0.securityContext.runAsNonRoot", False), "Running as Non-root:"),
        (_set("spec.containers.0.securityContext.runAsUser", 0), "Running as Non-root user"),
        (_set("spec.securityContext.seccompProfile", None), "Seccomp"),
        (_set("spec.containers.0.securityContext.seccompProfile", {"type": "Unconfined"}), "Seccomp"),
        (_set("spec.containers.0.securityContext.allowPrivilegeEscalation", None), "Privilege Escalation"),
        (_set("spec.containers.0.securityContext.capabilities.drop", ["NET_RAW"]), "Capabilities"),
        (_set("spec.containers.0.securityContext.capabilities.add", ["SYS_ADMIN"]), "Capabilities"),
        (_set("spec.containers.0.securityContext.privileged", True), "Privileged Containers"),
        (_set("spec.volumes.0", {"name": "host", "hostPath": {"path": "/"}}), "Volume Types"),
        (_set("spec.volumes.0", {"name": "nfs", "nfs": {"server": "x", "path": "/"}}), "Volume Types"),
        (_set("spec.hostNetwork", True), "Host Namespaces"),
        (_set("spec.containers.0.ports", [{"containerPort": 80, "hostPort": 80}]), "Host Ports"),
        (_set("spec.securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]), "Sysctls"),
        (_set("spec.containers.0.readinessProbe", {"httpGet": {"host": "10.0.0.1", "port": 80}}), "Host Probes"),
        (
            _set("spec.initContainers", [{"name": "init", "securityContext": {"allowPrivilegeEscalation": False}}]),
            "Capabilities: init",
        ),
    ],
)
def test_the_check_refuses_what_the_restricted_profile_refuses(
    break_it: Callable[[dict[str, Any]], None], control: str
) -> None:
    assert violations(compliant()) == []
    pod = compliant()
    break_it(pod)
    assert any(v.startswith(control) for v in violations(pod)), violations(pod)


# --------------------------------------------------------------------------- AdapterOps' pods


@pytest.mark.parametrize("kind", sorted(POD_KINDS))
def test_every_pod_kind_passes_the_restricted_profile(kind: str) -> None:
    pod = POD_KINDS[kind](CONFIG)
    assert violations(pod) == [], f"{kind}: {violations(pod)}"


@pytest.mark.parametrize("kind", sorted(POD_KINDS))
def test_no_pod_mounts_a_service_account_token(kind: str) -> None:
    assert POD_KINDS[kind](CONFIG)["spec"]["automountServiceAccountToken"] is False


def test_a_trial_with_a_workload_identity_keeps_its_service_account_but_no_api_token() -> None:
    pod = POD_KINDS["trial-job-secrets-and-identity"](CONFIG)["spec"]
    assert pod["serviceAccountName"] == "workload-identity" and pod["automountServiceAccountToken"] is False


def memory_gib(quantity: str) -> float:
    assert quantity.endswith("Gi"), quantity
    return float(quantity.removesuffix("Gi"))


@pytest.mark.parametrize("kind", sorted(POD_KINDS))
def test_every_empty_dir_is_bounded_and_shared_memory_is_half_the_memory_request(kind: str) -> None:
    spec = POD_KINDS[kind](CONFIG)["spec"]
    empty_dirs = {v["name"]: v["emptyDir"] for v in spec["volumes"] if "emptyDir" in v}
    assert empty_dirs and all("sizeLimit" in e for e in empty_dirs.values()), empty_dirs
    main = spec["containers"][0]
    shm = next(m["name"] for m in main["volumeMounts"] if m["mountPath"] == "/dev/shm")
    assert empty_dirs[shm]["medium"] == "Memory"
    requested = memory_gib(main["resources"]["requests"]["memory"])
    assert memory_gib(empty_dirs[shm]["sizeLimit"]) == requested / 2
    # Memory-backed: counted against the container's memory limit, which it must leave room under.
    assert memory_gib(empty_dirs[shm]["sizeLimit"]) < memory_gib(main["resources"]["limits"]["memory"])


def test_scratch_and_cache_sizes_come_from_the_configuration() -> None:
    config = Config(
        gpu_classes={"H100": H100}, trial_scratch_size="300Gi", engine_cache_size="1Ti", adapters_size="2Gi"
    )
    trial = {v["name"]: v for v in trial_job(config)["spec"]["volumes"]}
    assert trial["tmp"]["emptyDir"] == {"sizeLimit": "300Gi"}
    served = {v["name"]: v for v in serving_pod(config)["spec"]["volumes"]}
    assert served["cache"]["emptyDir"] == {"sizeLimit": "1Ti"}
    assert served["adapters"]["emptyDir"] == {"sizeLimit": "2Gi"}


def test_the_fetch_init_container_has_requests_and_limits() -> None:
    [fetch] = serving_pod()["spec"]["initContainers"]
    resources = fetch["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    # Memory requested = limited: the init container is never the one the node evicts first.
    assert resources["requests"]["memory"] == resources["limits"]["memory"]


@pytest.mark.parametrize("kind", sorted(POD_KINDS))
def test_each_container_runs_as_its_image_roles_user(kind: str) -> None:
    pod = POD_KINDS[kind](CONFIG)["spec"]
    for c in containers(pod):
        user = CONFIG.container_users[role_of(kind, c["name"])]
        sc = c["securityContext"]
        assert (sc["runAsUser"], sc["runAsGroup"]) == (user.run_as_user, user.run_as_group), c["name"]
        assert sc["readOnlyRootFilesystem"] is user.read_only_root_filesystem, c["name"]
    # The main container's group owns the pod's volumes (a trial writes its adapters to the output PVC).
    assert pod["securityContext"]["fsGroup"] == pod["containers"][0]["securityContext"]["runAsGroup"]


def on_volume(path: str, mounts: list[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


@pytest.mark.parametrize("kind", sorted(POD_KINDS))
def test_home_and_tmp_are_writable_volumes_even_on_a_read_only_root(kind: str) -> None:
    """A read-only root filesystem leaves the pod's volumes writable: each container's HOME and /tmp must
    be one of them (caches, Python's tempfile, HF and Triton all write under them)."""
    pod = POD_KINDS[kind](CONFIG)["spec"]
    for c in containers(pod):
        writable = [m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")]
        assert on_volume("/tmp", writable), f"{c['name']}: /tmp is not a writable volume"
        home = next((e["value"] for e in c.get("env", []) if e["name"] == "HOME"), None)
        if home is not None:
            assert on_volume(home, writable), f"{c['name']}: HOME {home} is not a writable volume"


def test_an_engine_cache_is_where_the_engine_writes_it() -> None:
    nim = serving_pod()["spec"]["containers"][0]
    cache = next(m["mountPath"] for m in nim["volumeMounts"] if m["name"] == "cache")
    assert {"name": "NIM_CACHE_PATH", "value": cache} in nim["env"]
    vllm = serving_pod(engine="vllm")["spec"]["containers"][0]
    cache = next(m["mountPath"] for m in vllm["volumeMounts"] if m["name"] == "cache")
    assert {"name": "HOME", "value": cache} in vllm["env"]


def test_configured_users_reach_the_pods_and_unset_fields_keep_their_defaults() -> None:
    config = Config.model_validate(
        {
            "gpu_classes": {"H100": H100},
            "container_users": json.dumps(
                {"nim": {"runAsUser": 1001}, "trainerNemo": {"readOnlyRootFilesystem": True}}
            ),
        }
    )
    nim = serving_pod(config)["spec"]["containers"][0]["securityContext"]
    assert (nim["runAsUser"], nim["runAsGroup"], nim["readOnlyRootFilesystem"]) == (1001, 1000, False)
    nemo = trial_job(config)["spec"]["containers"][0]["securityContext"]
    assert (nemo["runAsUser"], nemo["readOnlyRootFilesystem"]) == (1000, True)
    assert config.container_users["vllm"] == CONTAINER_USERS["vllm"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ADAPTEROPS_CONTAINER_USERS", '{"nim": {"runAsUser": 0}}', "nim.runAsUser: Input should be greater than or"),
        ("ADAPTEROPS_CONTAINER_USERS", '{"vllm": {"runAsGroup": 0}}', "(got 0; 0 is root, which the restricted"),
        ("ADAPTEROPS_CONTAINER_USERS", '{"triton": {"runAsUser": 5}}', "unknown image role 'triton'; the roles are"),
        ("ADAPTEROPS_CONTAINER_USERS", '{"nim": {"runAsUser": 5, "uid": 5}}', "nim.uid: Extra inputs"),
        ("ADAPTEROPS_CONTAINER_USERS", "[1000]", "must be a JSON object of image role -> user"),
        ("ADAPTEROPS_TRIAL_SCRATCH_SIZE", "100GB", "must be a Kubernetes quantity such as 100Gi"),
        ("ADAPTEROPS_ENGINE_CACHE_SIZE", "", "must be a Kubernetes quantity"),
    ],
)
def test_bad_pod_security_settings_are_refused_naming_the_setting(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    classes = tmp_path / "gpu-classes.yaml"
    classes.write_text("{}")
    with pytest.raises(ConfigError) as err:
        Config.from_env({"ADAPTEROPS_GPU_CLASSES_FILE": str(classes), variable: value})
    assert str(err.value).startswith(variable) and message in str(err.value), str(err.value)


def test_the_charts_defaults_are_the_operators_defaults() -> None:
    values = yaml.safe_load(CHART_VALUES.read_text())
    users = {role: u.model_dump(by_alias=True) for role, u in CONTAINER_USERS.items()}
    assert values["containerUsers"] == users
    defaults = Config(gpu_classes={"H100": H100})
    assert values["podVolumes"] == {
        "trialScratch": defaults.trial_scratch_size,
        "engineCache": defaults.engine_cache_size,
        "adapters": defaults.adapters_size,
    }


def test_a_pod_template_stripped_of_its_security_context_would_be_refused() -> None:
    """The other side of the kinds' passing test: the same pods without what this work adds fail."""
    pod = copy.deepcopy(POD_KINDS["serving-nim"](CONFIG))
    pod["spec"]["securityContext"] = {"seccompProfile": {"type": "RuntimeDefault"}}
    for c in containers(pod["spec"]):
        c["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert {v.split(":")[0] for v in violations(pod)} == {"Running as Non-root"}
