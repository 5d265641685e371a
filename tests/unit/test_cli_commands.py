"""`kubectl adapterops` commands against a fake API at the client.py boundary (what they read, what they
patch, what they print, how they fail) and the argument parser; the real API (lightkube against the API
server) is exercised by tests/cluster/test_kubectl_plugin.py."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapterops.api.kinds import FINETUNEJOB, MODELDEPLOYMENT, Kind
from adapterops.cli import commands
from adapterops.cli.errors import CliError


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeApi:
    """client.Api on objects by (kind, namespace, name); patches are JSON merge patches, as the real plugin
    sends. Kinds are recorded by name."""

    def __init__(self, *objects: dict[str, Any], on_patch: Any = None) -> None:
        self.objects = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []
        self.on_patch = on_patch

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind.kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    def patch(self, kind: Kind, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (kind.kind, namespace, name)
        self.patches.append((*key, body))
        merge(self.objects[key], body)
        if self.on_patch:
            self.on_patch(self.objects[key])
        return copy.deepcopy(self.objects[key])


def mdep(name: str = "agent", canary: bool = True, **status: Any) -> dict[str, Any]:
    st: dict[str, Any] = {"stable": {"revision": "aaaa111111", "replicas": 2, "readyReplicas": 2}, **status}
    if canary:
        st["canary"] = {"revision": "bbbb222222", "replicas": 1, "readyReplicas": 1, "weight": 50}
    return {
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "serving"},
        "spec": {"canary": {"steps": [50, 100]}},
        "status": st,
    }


def ftj(name: str = "sweep", suspend: bool = False) -> dict[str, Any]:
    return {"kind": "FineTuneJob", "metadata": {"name": name, "namespace": "serving"}, "spec": {"suspend": suspend}}


def run(api: FakeApi, *argv: str) -> tuple[int, str]:
    args = commands.parser().parse_args(list(argv))
    out = io.StringIO()
    code = commands.COMMANDS[args.command](api, getattr(args, "namespace", None) or "serving", args, out)
    return code, out.getvalue()


def test_promote_annotates_the_canary_revision() -> None:
    api = FakeApi(mdep())
    code, out = run(api, "promote", "agent")
    assert code == 0
    assert api.patches == [
        ("ModelDeployment", "serving", "agent", {"metadata": {"annotations": {"adapterops.io/promote": "bbbb222222"}}})
    ]
    assert out == (
        "modeldeployment.adapterops.io/agent annotated adapterops.io/promote=bbbb222222: "
        "the operator will promote canary revision bbbb222222\n"
    )


def test_abort_and_wait_reports_the_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "POLL_SECONDS", 0.01)

    def operator(obj: dict[str, Any]) -> None:  # what the operator does on the annotation
        revision = obj["metadata"]["annotations"]["adapterops.io/abort"]
        obj["status"].pop("canary")
        obj["status"]["history"] = [
            {"revision": revision, "outcome": "RolledBack", "reason": "aborted by the annotation"}
        ]

    api = FakeApi(mdep(), on_patch=operator)
    code, out = run(api, "abort", "agent", "--wait", "5")
    assert code == 0
    assert api.patches[0][3] == {"metadata": {"annotations": {"adapterops.io/abort": "bbbb222222"}}}
    assert out.splitlines()[-1] == "revision bbbb222222: RolledBack: aborted by the annotation"


def test_wait_exits_1_when_the_outcome_is_not_the_one_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "POLL_SECONDS", 0.01)

    def operator(obj: dict[str, Any]) -> None:  # the canary failed its analysis before the promotion landed
        obj["status"].pop("canary")
        obj["status"]["history"] = [{"revision": "bbbb222222", "outcome": "RolledBack", "reason": "latency"}]

    code, out = run(FakeApi(mdep(), on_patch=operator), "promote", "agent", "--wait", "5")
    assert code == 1 and "RolledBack: latency" in out


def test_wait_times_out_naming_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "POLL_SECONDS", 0.01)
    with pytest.raises(CliError, match=r"timed out after 0.05s waiting for the operator to promote bbbb222222"):
        run(FakeApi(mdep()), "promote", "agent", "--wait", "0.05")


def test_promote_refuses_without_a_canary() -> None:
    api = FakeApi(mdep(canary=False))
    with pytest.raises(CliError) as err:
        run(api, "promote", "agent")
    assert str(err.value) == (
        "ModelDeployment serving/agent has no canary in progress (revision aaaa111111 serves all traffic): "
        "nothing to promote"
    )
    assert not api.patches


def test_abort_of_an_unready_canary_says_it_waits() -> None:
    obj = mdep()
    obj["status"]["canary"]["readyReplicas"] = 0
    _, out = run(FakeApi(obj), "abort", "agent")
    assert "note: the canary is not ready yet; the operator acts once it is" in out


def test_missing_objects_are_named() -> None:
    with pytest.raises(CliError, match=r'ModelDeployment "nope" not found in namespace "serving"'):
        run(FakeApi(), "canary", "nope")
    with pytest.raises(CliError, match=r'FineTuneJob "nope" not found in namespace "other" \(kubectl get ftj'):
        run(FakeApi(), "sweep", "nope", "-n", "other")
    with pytest.raises(CliError, match=r'no FineTuneJob or ModelDeployment named "nope" in namespace "serving"'):
        run(FakeApi(), "resume", "nope")


def test_suspend_and_resume_a_finetunejob() -> None:
    api = FakeApi(ftj())
    assert run(api, "suspend", "sweep") == (
        0,
        "finetunejob.adapterops.io/sweep patched (spec.suspend=true)\n"
        "running trials finish; no new trial starts until `kubectl adapterops resume`\n",
    )
    assert api.patches[-1] == ("FineTuneJob", "serving", "sweep", {"spec": {"suspend": True}})
    assert run(api, "suspend", "sweep")[1].startswith(
        "finetunejob.adapterops.io/sweep unchanged (spec.suspend is already true)"
    )
    assert len(api.patches) == 1
    assert run(api, "resume", "sweep")[1] == "finetunejob.adapterops.io/sweep patched (spec.suspend=false)\n"
    assert api.patches[-1][3] == {"spec": {"suspend": False}}


def test_pause_and_resume_a_modeldeployment_and_the_inconclusive_hint() -> None:
    obj = mdep()
    obj["status"]["conditions"] = [
        {
            "type": "Suspended",
            "status": "True",
            "reason": "AnalysisInconclusive",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ]
    api = FakeApi(obj)
    assert run(api, "pause", "agent")[1] == "modeldeployment.adapterops.io/agent patched (spec.canary.paused=true)\n"
    assert api.patches[-1][3] == {"spec": {"canary": {"paused": True}}}
    _, out = run(api, "resume", "agent")
    assert out.startswith("modeldeployment.adapterops.io/agent patched (spec.canary.paused=false)\n")
    assert "holding because its analysis is inconclusive, not because it is paused" in out


def test_kind_picks_when_both_exist() -> None:
    api = FakeApi(ftj("same"), mdep("same"))
    with pytest.raises(CliError, match="both a FineTuneJob and a ModelDeployment are named"):
        run(api, "suspend", "same")
    run(api, "suspend", "same", "--kind", "mdep")
    run(api, "suspend", "same", "--kind", "FineTuneJob")
    assert [(p[0], p[3]) for p in api.patches] == [
        ("ModelDeployment", {"spec": {"canary": {"paused": True}}}),
        ("FineTuneJob", {"spec": {"suspend": True}}),
    ]


def test_namespace_and_connection_flags_go_before_or_after_the_command() -> None:
    p = commands.parser()
    assert p.parse_args(["-n", "a", "sweep", "x"]).namespace == "a"
    assert p.parse_args(["sweep", "x", "-n", "b"]).namespace == "b"
    assert p.parse_args(["--namespace=c", "canary", "x"]).namespace == "c"
    args = p.parse_args(["--context", "prod", "sweep", "x"])
    assert args.context == "prod" and not hasattr(args, "namespace")
    assert p.parse_args(["resume", "x", "--kind", "ftj"]).kind is FINETUNEJOB
    assert p.parse_args(["pause", "x", "--kind", "ModelDeployments"]).kind is MODELDEPLOYMENT
    assert p.parse_args(["report", "x", "-o", "r.html"]).output == "r.html"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["sweep"],
        ["resume", "x", "--kind", "pod"],
        ["report", "x"],
        ["explode", "x"],
        ["promote", "x", "--wait", "soon"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        commands.parser().parse_args(argv)
    assert exc.value.code == 2
    assert "usage: kubectl adapterops" in capsys.readouterr().err


def test_main_prints_errors_and_exits_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(commands, "connect", lambda kubeconfig, context: (FakeApi(mdep(canary=False)), "serving"))
    assert commands.main(["abort", "agent"]) == 1
    assert capsys.readouterr().err == (
        "error: ModelDeployment serving/agent has no canary in progress (revision aaaa111111 serves all traffic): "
        "nothing to abort\n"
    )
    out = io.StringIO()
    assert commands.main(["canary", "agent"], out=out) == 0
    assert out.getvalue().startswith("ModelDeployment serving/agent:")


def test_main_uses_the_contexts_namespace_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str | None, str | None]] = []

    def connect(kubeconfig: str | None, context: str | None) -> tuple[FakeApi, str]:
        seen.append((kubeconfig, context))
        return FakeApi(mdep(), {**mdep(), "metadata": {"name": "agent", "namespace": "ctx-ns"}}), "ctx-ns"

    monkeypatch.setattr(commands, "connect", connect)
    out = io.StringIO()
    commands.main(["--kubeconfig", "/k", "--context", "c", "canary", "agent"], out=out)
    assert out.getvalue().startswith("ModelDeployment ctx-ns/agent") and seen == [("/k", "c")]
    out = io.StringIO()
    commands.main(["canary", "agent", "-n", "serving"], out=out)
    assert out.getvalue().startswith("ModelDeployment serving/agent")


def test_report_writes_the_html(tmp_path: Path) -> None:
    out_dir = tmp_path / "claims" / "work" / "adapters" / "j" / "t00"
    (out_dir / "adapter").mkdir(parents=True)
    (out_dir / "metrics.json").write_text(
        json.dumps({"lossCurve": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]})
    )
    obj = {
        "kind": "FineTuneJob",
        "metadata": {"name": "j", "namespace": "serving"},
        "spec": {"objective": {"metric": "validationLoss"}},
        "status": {
            "state": "Succeeded",
            "trials": [
                {
                    "name": "t00",
                    "index": 0,
                    "state": "Succeeded",
                    "validationLoss": 1.4,
                    "adapterUri": "pvc://work/adapters/j/t00/adapter",
                }
            ],
            "champion": {"trial": "t00", "adapterUri": "pvc://work/adapters/j/t00/adapter"},
        },
    }
    target = tmp_path / "out" / "report.html"
    code, out = run(FakeApi(obj), "report", "j", "-o", str(target), "--pvc-root", str(tmp_path / "claims"), "--png")
    assert code == 0
    assert out == f"wrote {target} (1 trials, 1 loss curves)\nwrote {target.with_suffix('.png')}\n"
    assert 'class="loss-curve" data-trial="t00"' in target.read_text()
    assert target.with_suffix(".png").stat().st_size > 1000


def test_report_with_a_deployment_adds_its_cost_per_token_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    sweep = {"kind": "FineTuneJob", "metadata": {"name": "j", "namespace": "serving"}, "spec": {}, "status": {}}
    cost = {"stable": {"gpus": 2, "usd": 5840.0, "outputTokensPerSecond": 900.0, "costPerMillionTokens": 2.47}}
    target = tmp_path / "report.html"
    code, _ = run(FakeApi(sweep, mdep(canary=False, estimatedMonthlyCost=cost)), "report", "j", "-o", str(target),
                  "--deployment", "agent")  # fmt: skip
    assert code == 0
    assert '<tr data-role="stable">' in target.read_text() and ">2.47</td>" in target.read_text()
    with pytest.raises(CliError, match="agent"):
        run(FakeApi(sweep), "report", "j", "-o", str(target), "--deployment", "agent")


def block_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of matplotlib fail from now on in this test, as where the `cli` extra is not installed."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # None in sys.modules: `import` raises ImportError


def test_report_without_matplotlib_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    block_matplotlib(monkeypatch)
    target = tmp_path / "report.html"
    obj = {"kind": "FineTuneJob", "metadata": {"name": "j", "namespace": "serving"}, "status": {}}
    with pytest.raises(CliError, match="the report draws its charts with matplotlib") as err:
        run(FakeApi(obj), "report", "j", "-o", str(target))
    assert "pip install 'adapterops[cli]'" in str(err.value)
    assert not target.exists()


def test_the_other_commands_work_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    block_matplotlib(monkeypatch)
    assert run(FakeApi(mdep()), "canary", "agent")[1].startswith("ModelDeployment serving/agent:")
    assert run(FakeApi(ftj()), "suspend", "sweep")[0] == 0


def test_the_plugin_does_not_import_matplotlib_until_a_report_is_drawn() -> None:
    code = "import sys, adapterops.cli.commands; print('matplotlib' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
