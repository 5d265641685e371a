"""The informers' view: what a listing or a watch event changes, whom it tells, and when it is synced."""

from __future__ import annotations

from typing import Any

from lightkube.resources.core_v1 import Pod

from adapterops.deploy.builders import LABEL_MD, LABEL_MD_UID, LABEL_REVISION
from adapterops.deploy.observe import pod_item as serving_pod_item
from adapterops.finetune.builders import LABEL_JOB, LABEL_JOB_UID
from adapterops.finetune.observe import engine_item
from adapterops.runtime.informer import Informer


def jobset(
    name: str, job: str, uid: str, owner_uid: str = "owner-a", failed: bool = False, namespace: str = "ml"
) -> dict[str, Any]:
    conditions = [{"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "x"}] if failed else []
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "labels": {LABEL_JOB: job, LABEL_JOB_UID: owner_uid},
        },
        "spec": {},
        "status": {"conditions": conditions},
    }


def informer(told: list[Any], namespaces: tuple[str, ...] = ()) -> Informer:
    from adapterops.api.kinds import JOBSET

    return Informer(
        client=None,  # type: ignore[arg-type]  # not used by the view
        res=JOBSET.resource,
        summarize=engine_item,
        subscribers=[told.append],
        namespaces=namespaces,
        optional=True,
    )


def test_a_relisting_forgets_vanished_trials_and_tells_their_jobs() -> None:
    told: list[Any] = []
    view = informer(told)
    view._replace("", [jobset("a-t00", "a", "1", "owner-a"), jobset("b-t00", "b", "2", "owner-b")])
    assert [t.name for t in view.data(("ml", "owner-a"))] == ["a-t00"]
    told.clear()
    view._replace("", [jobset("b-t00", "b", "2", "owner-b")])  # a's JobSet went while the watch was down
    assert view.data(("ml", "owner-a")) == []
    assert ("ml", "a") in told and ("ml", "b") in told


def test_watch_events_update_the_summary_and_deletion_removes_it() -> None:
    told: list[Any] = []
    view = informer(told)
    view._remember("", jobset("a-t00", "a", "1"))
    view._remember("", jobset("a-t00", "a", "1", failed=True))
    assert [t.conditions["Failed"].status for t in view.data(("ml", "owner-a"))] == ["True"]
    view._forget("", jobset("a-t00", "a", "1"))
    assert view.data(("ml", "owner-a")) == [] and told == [("ml", "a")] * 3


def test_an_update_that_leaves_the_summary_alone_tells_nobody() -> None:
    told: list[Any] = []
    view = informer(told)
    view._remember("", jobset("a-t00", "a", "1"))
    touched = jobset("a-t00", "a", "1")
    touched["metadata"]["annotations"] = {"unrelated": "change"}  # e.g. another controller's annotation
    view._remember("", touched)
    assert told == [("ml", "a")]


def test_children_of_a_deleted_namesake_are_not_the_new_owners() -> None:
    view = informer([])
    view._replace("", [jobset("a-t00", "a", "1", owner_uid="old-uid")])
    assert view.data(("ml", "new-uid")) == []  # same job name, other owner UID: not its trial
    assert [t.name for t in view.data(("ml", "old-uid"))] == ["a-t00"]


def test_an_object_of_another_namespace_carrying_the_owners_labels_is_not_its_child() -> None:
    # A tenant who may create JobSets in its own namespace can copy another team's owner labels (UID included).
    view = informer([])
    view._replace("", [jobset("a-t00", "a", "1"), jobset("a-t00", "a", "2", namespace="tenant-a")])
    assert [t.name for t in view.data(("ml", "owner-a"))] == ["a-t00"]
    assert [i.uid for i in view.items(("ml", "owner-a"))] == ["1"]


def test_serving_pods_are_children_in_their_owners_namespace_only_and_never_on_the_host_network() -> None:
    def pod(name: str, namespace: str, host_network: bool = False) -> Pod:
        labels = {LABEL_MD: "shop", LABEL_MD_UID: "md-uid", LABEL_REVISION: "r1"}
        return Pod.from_dict(
            {
                "metadata": {"name": name, "namespace": namespace, "uid": name, "labels": labels},
                "spec": {"containers": [{"name": "c"}], "hostNetwork": host_network},
                "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
            }
        )

    view = Informer(client=None, res=Pod, summarize=serving_pod_item)  # type: ignore[arg-type]
    view._replace("", [pod("real", "prod"), pod("impostor", "tenant-a"), pod("on-host", "prod", host_network=True)])
    # The canary judge sends prompts only to pods of the owner's namespace, never to a node's address.
    assert [p.name for p in view.data(("prod", "md-uid"))] == ["real"]
    assert serving_pod_item(pod("on-host", "prod", host_network=True)) is None


def test_objects_without_the_owner_labels_are_ignored() -> None:
    stray = jobset("x", "a", "9")
    del stray["metadata"]["labels"][LABEL_JOB_UID]
    view = informer([])
    view._replace("", [stray])
    assert view.all() == []


def test_synced_only_once_every_namespace_is_listed() -> None:
    view = informer([], namespaces=("team-a", "team-b"))
    view._mark_listed("team-a")
    assert not view.synced and not view.listed.is_set()
    assert view.synced_in("team-a") and not view.synced_in("team-b")
    view._mark_listed("team-b")
    view._mark_listed("team-b")  # a relisting after a 410 changes nothing
    assert view.synced and view.listed.is_set()
