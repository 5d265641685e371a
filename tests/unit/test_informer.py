"""The informers' view: what a listing or a watch event changes, whom it tells, and when it is synced."""

from __future__ import annotations

from typing import Any

from adapterops.finetune.builders import LABEL_JOB, LABEL_JOB_UID
from adapterops.finetune.observe import engine_item
from adapterops.runtime.informer import Informer


def jobset(name: str, job: str, uid: str, owner_uid: str = "owner-a", failed: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "x"}] if failed else []
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {
            "name": name,
            "namespace": "ml",
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
    assert [t.name for t in view.data("owner-a")] == ["a-t00"]
    told.clear()
    view._replace("", [jobset("b-t00", "b", "2", "owner-b")])  # a's JobSet went while the watch was down
    assert view.data("owner-a") == []
    assert ("ml", "a") in told and ("ml", "b") in told


def test_watch_events_update_the_summary_and_deletion_removes_it() -> None:
    told: list[Any] = []
    view = informer(told)
    view._remember("", jobset("a-t00", "a", "1"))
    view._remember("", jobset("a-t00", "a", "1", failed=True))
    assert [t.conditions["Failed"].status for t in view.data("owner-a")] == ["True"]
    view._forget("", jobset("a-t00", "a", "1"))
    assert view.data("owner-a") == [] and told == [("ml", "a")] * 3


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
    assert view.data("new-uid") == []  # same job name, other owner UID: not its trial
    assert [t.name for t in view.data("old-uid")] == ["a-t00"]


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
