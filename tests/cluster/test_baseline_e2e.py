"""The baseline on the local cluster: the base model evaluated by a real Job after the trials (the real trial
runner's `baseline` command on the tiny Llama), the champion compared with it, and a ModelDeployment that
follows a champion no better than the base model keeping its stable revision instead of canarying it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_finetune_e2e import condition, ftj, sweep, workspace
from test_modeldeployment_e2e import cond, deployment, events, mdep, serving_ready

from testworld.cluster import LocalCluster, OperatorProcess, capture, wait_for
from testworld.judge import StandInJudge
from testworld.kubelet import Kubelet

ONE_TRIAL = {"maxTrials": 1, "parallelism": 1, "parameters": {}}


def finished(cluster: LocalCluster, name: str, namespace: str) -> dict[str, Any]:
    cluster.kubectl("wait", "--for=condition=Succeeded", f"ftj/{name}", "-n", namespace, "--timeout=900s", timeout=920)
    return ftj(cluster, name, namespace)


def test_the_baseline_row_and_a_champion_not_better_than_it_blocks_the_canary(
    cluster: LocalCluster,
    operator: OperatorProcess,
    kubelet: Kubelet,
    judge: StandInJudge,
    namespace: str,
    tiny_model: Path,
) -> None:
    workspace(cluster, namespace, tiny_model)
    evaluation = {
        "dataset": "pvc://work/data/challenge.jsonl",
        "samples": 4,
        "judge": {"endpoint": judge.url, "model": "stand-in-judge"},
    }
    training = {**sweep("x")["spec"]["training"], "learningRate": 2e-3}
    manifest = sweep("good", sweep=ONE_TRIAL, training=training, evaluation=evaluation, baseline={"evaluate": True})
    cluster.apply(manifest, namespace)
    good = finished(cluster, "good", namespace)
    capture(cluster, "ftj", "good", namespace, "finetunejob/baseline-beaten")
    status = good["status"]
    base, champion = status["baseline"], status["champion"]
    assert base["job"] == "good-baseline" and base["state"] == "Succeeded"
    # Training lowered the loss on the same split: the base model's is the higher one.
    assert base["validationLoss"] > champion["validationLoss"]
    imp = champion["improvement"]
    assert imp["metric"] == "validationLoss" and imp["betterThanBaseline"] is True
    assert imp["absolute"] == pytest.approx(base["validationLoss"] - champion["validationLoss"], abs=1e-5)
    assert imp["relative"] == pytest.approx(imp["absolute"] / base["validationLoss"], abs=1e-5)
    verdict = condition(good, "ChampionNotBetterThanBaseline")
    assert verdict["status"] == "False" and verdict["reason"] == "BetterThanBaseline"
    # The champion against the base model, pairwise: the baseline Job got the champion's adapter, the
    # stand-in judge compared each of the 4 challenge answers in both orders (by content: orders agree).
    pairwise = base["pairwise"]
    assert pairwise["status"] == "ok" and pairwise["pairs"] == 4 and pairwise["agreement"] == 1.0
    assert pairwise["wins"] + pairwise["ties"] + pairwise["losses"] == 4 and 0.0 <= pairwise["winRate"] <= 1.0
    assert base["judgeScore"] is not None and champion["judgeScore"] is not None
    jobs = cluster.get("jobs", "-n", namespace, "-l", "adapterops.io/finetunejob=good")["items"]
    components = sorted(j["metadata"]["labels"]["adapterops.io/component"] for j in jobs)
    assert components == ["baseline", "trial"]
    [evaluated] = events(cluster, namespace, "BaselineEvaluated")
    assert "good-baseline" in evaluated["message"] and "champion vs base model pairwise" in evaluated["message"]

    md = deployment("shop", "unused")
    md["spec"]["adapters"] = [{"name": "commerce", "fineTuneJobRef": {"name": "good"}}]
    md["spec"]["canary"]["analysis"] = {"failureLimit": 1}  # steps pass on their interval
    md["spec"]["canary"]["interval"] = "5s"
    cluster.apply(md, namespace)
    stable = serving_ready(cluster, "shop", namespace)["status"]["stable"]
    assert stable["adapters"] == {"commerce": champion["adapterUri"]}

    # A sweep whose champion must beat the base model by 100 in loss: none can, whatever it learnt.
    worse = sweep("worse", sweep=ONE_TRIAL, baseline={"minImprovement": 100})
    cluster.apply(worse, namespace)
    lost = finished(cluster, "worse", namespace)
    capture(cluster, "ftj", "worse", namespace, "finetunejob/baseline-not-beaten")
    verdict = condition(lost, "ChampionNotBetterThanBaseline")
    assert lost["status"]["state"] == "Succeeded" and verdict["status"] == "True"
    assert verdict["reason"] == "ChampionNotBetterThanBaseline" and "minImprovement 100" in verdict["message"]
    assert lost["status"]["champion"]["improvement"]["betterThanBaseline"] is False
    [warning] = events(cluster, namespace, "ChampionNotBetterThanBaseline")
    assert warning["type"] == "Warning"

    patch = {"adapters": [{"name": "commerce", "fineTuneJobRef": {"name": "worse"}}]}
    cluster.kubectl("patch", "mdep", "shop", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": patch}))
    waiting = wait_for(
        lambda: (
            (c := cond(mdep(cluster, "shop", namespace), "Progressing")).get("reason") == "WaitingForAdapters"
            and "is not better than the base model" in c.get("message", "")
            and c
        ),
        60,
        "the ModelDeployment to refuse the champion",
    )
    assert "FineTuneJob 'worse' champion worse-t00" in waiting["message"]
    held = mdep(cluster, "shop", namespace)["status"]
    assert "canary" not in held and held["stable"]["revision"] == stable["revision"]
    assert not events(cluster, namespace, "CanaryStarted")

    # Configurable: the team serves it anyway, through the usual canary.
    patch["adapters"][0]["fineTuneJobRef"]["requireBetterThanBaseline"] = False
    cluster.kubectl("patch", "mdep", "shop", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": patch}))
    wait_for(
        lambda: mdep(cluster, "shop", namespace)["status"]["stable"]["revision"] != stable["revision"],
        300,
        "the champion to be canaried and promoted once allowed",
    )
    assert mdep(cluster, "shop", namespace)["status"]["stable"]["adapters"] == {
        "commerce": lost["status"]["champion"]["adapterUri"]
    }
    assert events(cluster, namespace, "CanaryStarted")
