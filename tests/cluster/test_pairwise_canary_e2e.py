"""A canary decided by the pairwise judge metric alone: the stand-in judge compares the stable and the canary
pods' answers (both orders) and the canary is promoted when it answers better, rolled back when worse."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import test_modeldeployment_e2e
from test_modeldeployment_e2e import change, cond, deployment, events, fake_adapter, mdep, serving_ready

from testworld.cluster import LocalCluster, capture, wait_for
from testworld.judge import StandInJudge

world = test_modeldeployment_e2e.world  # the fixture: its namespace, prompts ConfigMap and PVC


def quality(value: float) -> dict[str, Any]:
    """The stand-in engine's share of reference answers (a change of env is a new revision)."""
    env = [{"name": "STANDIN_LATENCY_MEDIAN", "value": "0.05"}, {"name": "STANDIN_QUALITY", "value": str(value)}]
    return {"runtime": {"env": env}}


def test_the_pairwise_metric_alone_promotes_a_better_canary_and_rolls_back_a_worse_one(
    cluster: LocalCluster, world: Path, judge: StandInJudge, namespace: str
) -> None:
    md = deployment("duel", fake_adapter(world, "v1"), judge, env=quality(0.5)["runtime"]["env"])
    analysis = md["spec"]["canary"]["analysis"]
    del analysis["latency"], analysis["errorRate"]
    analysis["judge"] |= {"mode": "pairwise", "minWinRate": 0.45}
    md["spec"]["canary"]["interval"] = "10s"
    cluster.apply(md, namespace)
    first = serving_ready(cluster, "duel", namespace)["status"]["stable"]["revision"]

    # Canary answers with the reference every time, stable half the time: it wins or ties every prompt.
    change(cluster, "duel", namespace, quality(1.0))
    seen: list[dict[str, Any]] = []

    def promoted() -> dict[str, Any] | None:
        status = mdep(cluster, "duel", namespace)["status"]
        seen.extend(m for m in (status.get("analysis") or {}).get("metrics", []) if m.get("samples"))
        return status if status["stable"]["revision"] != first else None

    status = wait_for(promoted, 300, "the better canary to be promoted", interval=0.5)
    capture(cluster, "mdep", "duel", namespace, "modeldeployment/pairwise-promoted")
    history = status["history"][0]
    assert history["outcome"] == "Promoted" and history["reason"].startswith("pairwise"), history
    # The analysis shown on the way (none when the verdict came with the first status write: writes are
    # coalesced) and the verdict itself: the pairwise metric only, a win rate above even.
    assert {m["name"] for m in seen} <= {"pairwise"}, seen
    # The canary never loses a prompt, and the stand-in judge looks at content only: both orders agree.
    assert all("lost 0 of" in m["message"] for m in seen), seen
    assert all("agreed with itself across orders on 100%" in m["message"] for m in seen), seen
    win_rate = re.match(r"pairwise ([0-9.]+) ", history["reason"])
    assert win_rate and float(win_rate.group(1)) > 0.5, history["reason"]
    assert all(m["canaryValue"] > 0.5 for m in seen)

    # Now a canary that mostly answers worse than the (perfect) stable: it loses and is rolled back.
    better = status["stable"]["revision"]
    change(cluster, "duel", namespace, quality(0.1))
    wait_for(lambda: cond(mdep(cluster, "duel", namespace), "RolledBack").get("status") == "True", 300, "rollback")
    capture(cluster, "mdep", "duel", namespace, "modeldeployment/pairwise-rolled-back")
    status = mdep(cluster, "duel", namespace)["status"]
    assert status["stable"]["revision"] == better
    assert status["history"][0]["outcome"] == "RolledBack" and status["history"][0]["reason"].startswith("pairwise")
    [rolled] = events(cluster, namespace, "RolledBack")
    assert "Canary loses to stable" in rolled["message"]
