"""The child watches' view: what a listing or a watch event changes, and whom it tells."""

from __future__ import annotations

from typing import Any

from adapterops.finetune.builders import LABEL_JOB
from adapterops.finetune.observe import engine_summary
from adapterops.runtime.informer import ChildWatch


def jobset(name: str, job: str, uid: str, failed: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "x"}] if failed else []
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name, "namespace": "ml", "uid": uid, "labels": {LABEL_JOB: job}},
        "spec": {},
        "status": {"conditions": conditions},
    }


def watch(told: list[Any]) -> ChildWatch:
    async def served() -> bool:
        return True

    return ChildWatch(
        kube=None,  # type: ignore[arg-type]  # not used by the view
        api_version="jobset.x-k8s.io/v1alpha2",
        kind="JobSet",
        label=LABEL_JOB,
        summarize=engine_summary,
        on_change=told.append,
        served=served,
    )


def test_a_relisting_forgets_vanished_trials_and_tells_their_jobs() -> None:
    told: list[Any] = []
    view = watch(told)
    view._replace("", [jobset("a-t00", "a", "1"), jobset("b-t00", "b", "2")])
    assert [t["name"] for t in view.items(("ml", "a"))] == ["a-t00"]
    told.clear()
    view._replace("", [jobset("b-t00", "b", "2")])  # a's JobSet went while the watch was down
    assert view.items(("ml", "a")) == []
    assert ("ml", "a") in told and ("ml", "b") in told


def test_watch_events_update_the_summary_and_deletion_removes_it() -> None:
    told: list[Any] = []
    view = watch(told)
    view._remember("", jobset("a-t00", "a", "1"))
    view._remember("", jobset("a-t00", "a", "1", failed=True))
    assert [t["conditions"]["Failed"]["status"] for t in view.items(("ml", "a"))] == ["True"]
    view._forget("", jobset("a-t00", "a", "1"))
    assert view.items(("ml", "a")) == [] and told == [("ml", "a")] * 3


def test_an_update_that_leaves_the_summary_alone_tells_nobody() -> None:
    told: list[Any] = []
    view = watch(told)
    view._remember("", jobset("a-t00", "a", "1"))
    touched = jobset("a-t00", "a", "1")
    touched["metadata"]["annotations"] = {"unrelated": "change"}  # e.g. another controller's annotation
    view._remember("", touched)
    assert told == [("ml", "a")]


def test_synced_only_once_every_namespace_is_listed() -> None:
    view = watch([])
    view.namespaces = ("team-a", "team-b")
    view._mark_listed("team-a")
    assert not view.synced.is_set()
    view._mark_listed("team-b")
    view._mark_listed("team-b")  # a relisting after a 410 changes nothing
    assert view.synced.is_set()
