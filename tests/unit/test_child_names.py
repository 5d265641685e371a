"""Every name a builder derives from an object's name is valid for every name the CRD accepts, and two
objects never share a child: two 60-character names that differ only in their last character."""

from __future__ import annotations

from typing import Any

import pytest

from adapterops.api.finetunejob import MAX_NODES, FineTuneJobSpec
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.api.names import DNS1035_LABEL, DNS1123_LABEL, DNS1123_SUBDOMAIN, OBJECT_NAME, NameFormat
from adapterops.config import Config, GpuClass
from adapterops.deploy import builders as serving
from adapterops.finetune import builders as trials
from adapterops.finetune.plan import plan

CONFIG = Config(
    gpu_classes={
        "H100": GpuClass.model_validate(
            {"nodeSelector": {"nvidia.com/gpu.product": "H100"}, "pricePerHour": 4.5, "memoryGiB": 80}
        )
    }
)
PREFIX = "a" + "-long-tenant-name" * 3 + "-x" * 4  # 60 characters with the last one below
TWINS = (PREFIX[:59] + "a", PREFIX[:59] + "b")
# Long claims, one with dots: their pod volume names must be DNS-1123 labels too.
CLAIMS = ("models." + "m" * 70, "data-" + "d" * 60 + "-1", "data-" + "d" * 60 + "-2")


def owner(kind: str, name: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "tenant-a", "uid": f"uid-{name[-1]}"}
    return {"apiVersion": "adapterops.io/v1alpha1", "kind": kind, "metadata": meta}


def check(fmt: NameFormat, names: list[str]) -> list[str]:
    bad = [n for n in names if not fmt.is_valid(n)]
    assert not bad, f"not {fmt.describe()}: {bad}"
    return names


def label_values(obj: dict[str, Any]) -> list[str]:
    found = list(obj["metadata"].get("labels", {}).values())
    template = obj.get("spec", {}).get("template", {})
    return found + list(template.get("metadata", {}).get("labels", {}).values())


def ftj_children(name: str) -> set[str]:
    """Every name derived from a FineTuneJob called `name`, checked against the format its kind requires."""
    spec = FineTuneJobSpec.model_validate(
        {
            "baseModel": {"name": "tiny", "uri": f"pvc://{CLAIMS[0]}/tiny"},
            "dataset": {"train": f"pvc://{CLAIMS[1]}/train.jsonl"},
            "training": {"maxSteps": 10},
            "objective": {"metric": "validationLoss", "goal": "minimize"},
            "output": {"uri": f"pvc://{CLAIMS[2]}/runs"},
            "resources": {"nodes": MAX_NODES},
            "sweep": {"maxTrials": 100, "parameters": {"training.seed": {"values": list(range(100))}}},
        }
    )
    me = owner("FineTuneJob", name)
    planned = plan(name, spec)
    assert len(planned) == 100
    configmaps = trials.trials_configmaps(me, planned, spec)
    names = check(DNS1123_SUBDOMAIN, [c["metadata"]["name"] for c in configmaps])
    for trial in planned:
        job = trials.trial_job(me, trial, spec, CONFIG)
        jobset = trials.trial_jobset(me, trial, spec, CONFIG)
        pytorchjob = trials.trial_pytorchjob(me, trial, spec, CONFIG)
        # Job, JobSet and PyTorchJob names become label values and (JobSet, PyTorchJob) Service names.
        names += check(DNS1035_LABEL, [job["metadata"]["name"], jobset["metadata"]["name"]])
        # JobSet pods: <jobset>-<replicatedJob>-<job index>-<node index>, also their DNS hostnames.
        replicated = jobset["spec"]["replicatedJobs"][0]
        hosts = [f"{jobset['metadata']['name']}-{replicated['name']}-0-{k}" for k in range(spec.resources.nodes)]
        names += check(DNS1035_LABEL, hosts)
        master = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]["containers"][0]
        assert f"--master-addr={hosts[0]}.{jobset['metadata']['name']}" in master["command"]
        # PyTorchJob pods and Services: <name>-master-0, <name>-worker-<index>.
        workers = pytorchjob["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"]
        pt = pytorchjob["metadata"]["name"]
        names += check(DNS1035_LABEL, [f"{pt}-master-0"] + [f"{pt}-worker-{i}" for i in range(workers)])
        pod = job["spec"]["template"]["spec"]
        volumes = [v["name"] for v in pod["volumes"]]
        check(DNS1123_LABEL, volumes)
        assert len(set(volumes)) == len(volumes)
        check(DNS1123_SUBDOMAIN, [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v])
        check(DNS1123_LABEL, [v for v in label_values(job) if v != me["metadata"]["uid"]])
    return set(names)


def mdep_children(name: str) -> set[str]:
    spec = ModelDeploymentSpec.model_validate(
        {
            "baseModel": {"name": "tiny", "uri": f"pvc://{CLAIMS[0]}/tiny"},
            "runtime": {"engine": "vllm"},
            "adapters": [{"name": "a", "uri": f"pvc://{CLAIMS[1]}/a"}, {"name": "b", "uri": f"pvc://{CLAIMS[2]}/b"}],
        }
    )
    me = owner("ModelDeployment", name)
    adapters = {a.name: a.uri or "" for a in spec.adapters}
    revision = serving.revision_of(spec, adapters, CONFIG)  # the same for both twins: same spec
    deployment = serving.revision_deployment(me, spec, adapters, revision, 1, CONFIG)
    revision_service = serving.revision_service(me, revision)
    stable = serving.stable_service(me)
    names = [deployment["metadata"]["name"], revision_service["metadata"]["name"], stable["metadata"]["name"]]
    check(DNS1035_LABEL, names)  # Services are DNS-1035 labels; the Deployment shares its revision Service's name
    assert stable["metadata"]["name"] == name
    assert [b["name"] for b in serving.route_backends(name, revision, None, 0)] == [deployment["metadata"]["name"]]
    pod = deployment["spec"]["template"]["spec"]
    volumes = [v["name"] for v in pod["volumes"]]
    check(DNS1123_LABEL, volumes)
    assert len(set(volumes)) == len(volumes)
    check(DNS1123_LABEL, [v for v in label_values(deployment) if v != me["metadata"]["uid"]])
    return {deployment["metadata"]["name"], revision_service["metadata"]["name"], stable["metadata"]["name"]}


def test_the_twins_are_accepted_names_of_60_characters_differing_in_the_last() -> None:
    a, b = TWINS
    assert len(a) == len(b) == 60 and a[:-1] == b[:-1] and a != b
    assert OBJECT_NAME.is_valid(a) and OBJECT_NAME.is_valid(b)


@pytest.mark.parametrize("children", [ftj_children, mdep_children], ids=["FineTuneJob", "ModelDeployment"])
def test_two_long_names_get_valid_and_distinct_children(children: Any) -> None:
    a, b = (children(name) for name in TWINS)
    assert a and b and not a & b, f"shared children: {sorted(a & b)}"


@pytest.mark.parametrize("name", ["a", "a" * 46, "a" * 47, "a" * 52, "a" * 53, "a" * 63, "a-" * 31 + "a"])
def test_every_accepted_name_length_gives_valid_children(name: str) -> None:
    assert OBJECT_NAME.is_valid(name)
    assert ftj_children(name) and mdep_children(name)


def test_short_names_keep_their_readable_children() -> None:
    me = owner("FineTuneJob", "sweep")
    assert plan("sweep", FineTuneJobSpec.model_validate(_ftj()))[0].name == "sweep-t00"
    assert trials.configmap_name("sweep") == "sweep-trials"
    assert serving.revision_name("agent", "0123456789") == "agent-0123456789"
    assert serving.stable_service(owner("ModelDeployment", "agent"))["metadata"]["name"] == "agent"
    assert me["metadata"]["name"] == "sweep"


def _ftj() -> dict[str, Any]:
    return {
        "baseModel": {"name": "tiny", "uri": "/m"},
        "dataset": {"train": "/d"},
        "training": {"maxSteps": 1},
        "objective": {"metric": "validationLoss", "goal": "minimize"},
        "output": {"uri": "s3://b/o"},
    }
