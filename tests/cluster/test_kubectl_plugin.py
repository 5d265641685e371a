"""`kubectl adapterops` against the local cluster: the plugin installed by the package (the
`kubectl-adapterops` entry point on PATH, found and run by the real kubectl), a real 2-trial sweep
(leaderboard, HTML report with the trials' loss curves, suspend/resume) and real canaries
(canary view with per-metric verdicts, promote and abort through the revision annotations)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from test_finetune_e2e import ftj, sweep, workspace
from test_modeldeployment_e2e import (  # noqa: F401 (world is a fixture)
    change,
    cond,
    deployment,
    fake_adapter,
    mdep,
    serving_ready,
    world,
)

from testworld.cluster import TOOLS, LocalCluster, OperatorProcess, wait_for
from testworld.kubelet import Kubelet
from testworld.prometheus import Prometheus

SVG = "{http://www.w3.org/2000/svg}"


def plugin(
    cluster: LocalCluster, *args: str, ok: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`kubectl adapterops ARGS` as a user runs it: kubectl finds kubectl-adapterops on PATH."""
    env = {**cluster.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["kubectl", "adapterops", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert proc.returncode == 0, (
            f"kubectl adapterops {' '.join(args)}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
    return proc


def rows(out: str, first: str) -> list[list[str]]:
    """Table rows after the header line starting with `first`, up to a blank or indented line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    body = []
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith(" "):
            break
        body.append(line.split())
    return body


def test_sweep_leaderboard_report_and_suspend(
    cluster: LocalCluster,
    operator: OperatorProcess,
    kubelet: Kubelet,
    namespace: str,
    tiny_model: Path,
    tmp_path: Path,
) -> None:
    workspace(cluster, namespace, tiny_model)
    two = {"maxTrials": 2, "parallelism": 2, "parameters": {"training.learningRate": {"values": [5e-4, 2e-3]}}}
    cluster.apply(sweep("plug", sweep=two), namespace)
    wait_for(lambda: ftj(cluster, "plug", namespace).get("status", {}).get("trials"), 60, "the sweep's trials")
    early = plugin(cluster, "sweep", "plug", "-n", namespace).stdout
    assert early.startswith(f"FineTuneJob {namespace}/plug: ") and "plug-t00" in early and "plug-t01" in early
    cluster.kubectl("wait", "--for=condition=Succeeded", "ftj/plug", "-n", namespace, "--timeout=600s", timeout=620)
    status = ftj(cluster, "plug", namespace)["status"]
    losses = {t["name"]: t["validationLoss"] for t in status["trials"]}
    champion = status["champion"]["trial"]
    best_first = sorted(losses, key=lambda n: (losses[n], n))
    assert champion == best_first[0]

    out = plugin(cluster, "-n", namespace, "sweep", "plug").stdout
    print(out)
    assert f"FineTuneJob {namespace}/plug: Succeeded, 2/2 trials finished (2 succeeded, 0 failed" in out
    assert "objective: validationLoss (minimize)" in out
    table = rows(out, "RANK")
    assert [r[1] for r in table] == best_first
    assert table[0][0] == "1*" and table[1][0] == "2"
    by_name = {r[1]: r for r in table}
    assert by_name["plug-t00"][2] == "0.0005" and by_name["plug-t01"][2] == "0.002"
    for name, row in by_name.items():
        assert row[3] == f"{losses[name]:.4f}" and row[5:] == ["Succeeded", "1"]
    assert f"* champion: {champion}  {status['champion']['adapterUri']}" in out

    report = tmp_path / "report.html"
    pvcs = TOOLS / "pvcs" / cluster.name / namespace  # pvc://work/... lives at <this>/work/...
    done = plugin(cluster, "report", "plug", "-n", namespace, "-o", str(report), "--pvc-root", str(pvcs), "--png")
    assert done.stdout == f"wrote {report} (2 trials, 2 loss curves)\nwrote {report.with_suffix('.png')}\n"
    assert done.stderr == ""
    page = report.read_text()
    assert "plug-t00" in page and "plug-t01" in page
    curves = re.findall(r'<svg[^>]*class="loss-curve"[^>]*data-trial="([^"]+)"', page)
    assert sorted(curves) == ["plug-t00", "plug-t01"]
    for name in curves:  # each curve has a dot per logged step of the trial (maxSteps 3)
        svg = re.search(rf'<svg[^>]*data-trial="{name}".*?</svg>', page, re.S)
        assert svg
        line = ET.fromstring(svg.group(0)).find(f".//{SVG}g[@id='loss-curve-{name}']")
        assert line is not None and len(line.findall(f".//{SVG}use")) == 3
    assert f'data-champion="{champion}"' in page and f"Champion: {champion}" in page
    assert report.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"

    assert plugin(cluster, "suspend", "plug", "-n", namespace).stdout.startswith(
        "finetunejob.adapterops.io/plug patched (spec.suspend=true)"
    )
    assert ftj(cluster, "plug", namespace)["spec"]["suspend"] is True
    assert plugin(cluster, "resume", "plug", "-n", namespace, "--kind", "ftj").stdout == (
        "finetunejob.adapterops.io/plug patched (spec.suspend=false)\n"
    )
    assert ftj(cluster, "plug", namespace)["spec"]["suspend"] is False

    missing = plugin(cluster, "sweep", "nope", "-n", namespace, ok=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert (
        missing.stderr
        == f'error: FineTuneJob "nope" not found in namespace "{namespace}" (kubectl get ftj -n {namespace})\n'
    )


def test_canary_view_promote_and_abort(
    cluster: LocalCluster,
    world: Path,  # noqa: F811 (the fixture imported above)
    namespace: str,
    prometheus: Prometheus,
) -> None:
    md = deployment("agent", fake_adapter(world, "v1"))
    # Latency analysis without client traffic never reaches a verdict: the canary stays Inconclusive at its
    # first step until the plugin decides.
    md["spec"]["canary"]["analysis"] = {"latency": {"quantile": 0.9, "maxSeconds": 2}, "failureLimit": 1}
    md["spec"]["canary"]["interval"] = "1h"
    cluster.apply(md, namespace)
    stable = serving_ready(cluster, "agent", namespace)["status"]["stable"]["revision"]

    refused = plugin(cluster, "promote", "agent", "-n", namespace, ok=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: ModelDeployment {namespace}/agent has no canary in progress "
        f"(revision {stable} serves all traffic): nothing to promote\n"
    )

    change(cluster, "agent", namespace, {"adapters": [{"name": "commerce", "uri": fake_adapter(world, "v2")}]})

    def analysing() -> Any:
        status = mdep(cluster, "agent", namespace)["status"]
        metrics = (status.get("analysis") or {}).get("metrics") or []
        return status.get("canary", {}).get("weight") == 50 and metrics and status

    status = wait_for(analysing, 120, "the canary at 50% with an analysis")
    v2 = status["canary"]["revision"]
    out = plugin(cluster, "canary", "agent", "-n", namespace).stdout
    print(out)
    assert out.startswith(f"ModelDeployment {namespace}/agent: Ready=True (Serving), Progressing=True")
    revisions = {r[0]: r for r in rows(out, "ROLE")}
    assert revisions["stable"][1] == stable and revisions["canary"][1] == v2
    assert revisions["stable"][6] == "50%" and revisions["canary"][6] == "50%"
    assert revisions["canary"][-1] == "commerce=pvc://work/adapters/v2"
    assert "steps: [50%] -> 100%   (interval 1h, failure limit 1, auto-promote)" in out
    assert "current step 1/2: target 50%, canary weight 50%, started " in out
    (latency,) = rows(out, "METRIC")
    assert latency[:2] == ["latency", "Inconclusive"] and " ".join(latency).endswith("p90 <= 2s")
    assert "history (newest first):" in out and stable in out.split("history (newest first):")[1]

    promoted = plugin(cluster, "promote", "agent", "-n", namespace, "--wait", "90", timeout=120)
    assert promoted.stdout.splitlines() == [
        f"modeldeployment.adapterops.io/agent annotated adapterops.io/promote={v2}: "
        f"the operator will promote canary revision {v2}",
        f"revision {v2}: Promoted: the adapterops.io/promote annotation",
    ]
    obj = mdep(cluster, "agent", namespace)
    assert obj["status"]["stable"]["revision"] == v2 and obj["metadata"]["annotations"]["adapterops.io/promote"] == v2

    change(cluster, "agent", namespace, {"adapters": [{"name": "commerce", "uri": fake_adapter(world, "v3")}]})
    v3 = wait_for(
        lambda: mdep(cluster, "agent", namespace)["status"].get("canary", {}).get("revision"), 60, "canary v3"
    )
    aborted = plugin(cluster, "abort", "agent", "-n", namespace, "--wait", "90", timeout=120)
    assert (
        aborted.stdout.splitlines()[-1] == f"revision {v3}: RolledBack: aborted by the adapterops.io/abort annotation"
    )
    obj = mdep(cluster, "agent", namespace)
    assert obj["status"]["stable"]["revision"] == v2 and cond(obj, "RolledBack")["status"] == "True"
    after = plugin(cluster, "canary", "agent", "-n", namespace).stdout
    assert f"no canary in progress: revision {v2} serves all traffic" in after
    outcomes = [r[2] for r in rows(after, "AGE") if len(r) > 2 and r[1] in (v3, v2, stable)]
    assert outcomes[:3] == ["RolledBack", "Promoted", "Initial"]

    assert plugin(cluster, "pause", "agent", "-n", namespace).stdout == (
        "modeldeployment.adapterops.io/agent patched (spec.canary.paused=true)\n"
    )
    assert mdep(cluster, "agent", namespace)["spec"]["canary"]["paused"] is True
    plugin(cluster, "resume", "agent", "-n", namespace)
    assert mdep(cluster, "agent", namespace)["spec"]["canary"]["paused"] is False
