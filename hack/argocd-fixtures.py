"""Copy the objects the operator produced in the cluster tests into the Argo CD checks' testdata.

    ADAPTEROPS_TEST_CLUSTER=adapterops-argo ADAPTEROPS_CAPTURE_DIR=/tmp/capture \\
        .venv/bin/pytest tests/cluster/test_finetune_e2e.py tests/cluster/test_modeldeployment_e2e.py \\
        tests/cluster/test_serving_profile_e2e.py
    .venv/bin/python hack/argocd-fixtures.py /tmp/capture

The cluster tests call `capture(...)` (hack/testworld/cluster.py) at the moments that matter (a sweep
running, succeeded, ...; a canary at each weight, holding, rolled back, ...). Each captured object is
copied as it is, under a header naming where it came from. A few fixtures are derived from a captured
object by one stated edit (a bumped generation, the status not yet written, the expected output of an
action); their header says which edit. The health_test.yaml and action_test.yaml files beside them are
written by hand: they are the specification.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1] / "manifests" / "argocd" / "resource_customizations" / "adapterops.io"
SOURCES = {
    "finetunejob": "tests/cluster/test_finetune_e2e.py",
    "modeldeployment": "tests/cluster/test_modeldeployment_e2e.py",
    "servingprofile": "tests/cluster/test_serving_profile_e2e.py",
}
Obj = dict[str, Any]


def captured_header(label: str) -> str:
    source = SOURCES[label.split("/")[0]]
    return (
        f"# Captured from the operator by {source} (capture label {label}; see capture() in\n"
        "# hack/testworld/cluster.py), copied by hack/argocd-fixtures.py.\n"
    )


def derived_header(label: str, edit: str) -> str:
    return captured_header(label).replace(", copied by", ", derived by") + f"# Edited by hand: {edit}\n"


def dump(obj: Obj) -> str:
    return yaml.safe_dump(obj, sort_keys=False, width=100)


def bump_generation(obj: Obj) -> None:
    obj["metadata"]["generation"] += 1


def drop_status(obj: Obj) -> None:
    obj.pop("status", None)


def annotate(key: str) -> Callable[[Obj], None]:
    def edit(obj: Obj) -> None:
        obj["metadata"].setdefault("annotations", {})[key] = obj["status"]["canary"]["revision"]

    return edit


def set_spec(path: str, value: Any) -> Callable[[Obj], None]:
    def edit(obj: Obj) -> None:
        node = obj["spec"]
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    return edit


def main(capture_dir: Path) -> int:
    written: list[Path] = []
    missing: list[str] = []

    def load(label: str) -> Obj | None:
        path = capture_dir / f"{label}.yaml"
        if not path.exists():
            missing.append(label)
            return None
        obj: Obj = yaml.safe_load(path.read_text())
        return obj

    def copy_to(label: str, dest: Path) -> None:
        obj = load(label)
        if obj is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(captured_header(label) + dump(obj))
            written.append(dest)

    def derive(label: str, dest: Path, edit: Callable[[Obj], None], what: str) -> None:
        obj = load(label)
        if obj is not None:
            obj = copy.deepcopy(obj)
            edit(obj)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(derived_header(label, what) + dump(obj))
            written.append(dest)

    ftj, mdep = ROOT / "FineTuneJob", ROOT / "ModelDeployment"
    # FineTuneJob health
    for state in ("running", "succeeded", "failed", "suspended"):
        copy_to(f"finetunejob/{state}", ftj / "testdata" / f"{state}.yaml")
    for refused in sorted((capture_dir / "finetunejob").glob("refused-*.yaml")):
        copy_to(f"finetunejob/{refused.stem}", ftj / "testdata" / refused.name)
    derive(
        "finetunejob/running",
        ftj / "testdata" / "generation-not-observed.yaml",
        bump_generation,
        "metadata.generation + 1, as after a spec edit the operator has not reconciled yet.",
    )
    derive(
        "finetunejob/running",
        ftj / "testdata" / "no-status.yaml",
        drop_status,
        "status removed, as just after `kubectl apply`, before the operator's first reconcile.",
    )
    # FineTuneJob actions
    for state in ("running", "succeeded", "failed", "suspended"):
        copy_to(f"finetunejob/{state}", ftj / "actions" / "testdata" / f"{state}.yaml")
    derive(
        "finetunejob/running",
        ftj / "actions" / "testdata" / "running-suspend.yaml",
        set_spec("suspend", True),
        "spec.suspend set to true: the expected output of the suspend action.",
    )
    derive(
        "finetunejob/suspended",
        ftj / "actions" / "testdata" / "suspended-resume.yaml",
        set_spec("suspend", False),
        "spec.suspend set to false: the expected output of the resume action.",
    )

    # ModelDeployment health
    canaries = sorted((capture_dir / "modeldeployment").glob("canary-*.yaml"), key=lambda p: int(p.stem.split("-")[1]))
    for canary in canaries:
        copy_to(f"modeldeployment/{canary.stem}", mdep / "testdata" / canary.name)
    for state in ("healthy", "rolled-back", "holding-inconclusive", "paused"):
        copy_to(f"modeldeployment/{state}", mdep / "testdata" / f"{state}.yaml")
    derive(
        "modeldeployment/healthy",
        mdep / "testdata" / "generation-not-observed.yaml",
        bump_generation,
        "metadata.generation + 1, as after a spec edit the operator has not reconciled yet.",
    )
    derive(
        "modeldeployment/healthy",
        mdep / "testdata" / "no-status.yaml",
        drop_status,
        "status removed, as just after `kubectl apply`, before the operator's first reconcile.",
    )
    # ModelDeployment actions
    first_canary = f"modeldeployment/{canaries[0].stem}" if canaries else "modeldeployment/canary-10"
    copy_to(first_canary, mdep / "actions" / "testdata" / "canary.yaml")
    for state in ("healthy", "paused", "holding-inconclusive", "rolled-back"):
        copy_to(f"modeldeployment/{state}", mdep / "actions" / "testdata" / f"{state}.yaml")
    derive(
        first_canary,
        mdep / "actions" / "testdata" / "canary-promote.yaml",
        annotate("adapterops.io/promote"),
        "annotation adapterops.io/promote set to status.canary.revision: the promote action's output.",
    )
    derive(
        first_canary,
        mdep / "actions" / "testdata" / "canary-abort.yaml",
        annotate("adapterops.io/abort"),
        "annotation adapterops.io/abort set to status.canary.revision: the abort action's output.",
    )
    derive(
        "modeldeployment/holding-inconclusive",
        mdep / "actions" / "testdata" / "holding-inconclusive-promote.yaml",
        annotate("adapterops.io/promote"),
        "annotation adapterops.io/promote set to status.canary.revision: the promote action's output.",
    )
    derive(
        "modeldeployment/healthy",
        mdep / "actions" / "testdata" / "healthy-pause.yaml",
        set_spec("canary.paused", True),
        "spec.canary.paused set to true: the expected output of the pause action.",
    )
    derive(
        "modeldeployment/paused",
        mdep / "actions" / "testdata" / "paused-resume.yaml",
        set_spec("canary.paused", False),
        "spec.canary.paused set to false: the expected output of the resume action.",
    )

    # ServingProfile health
    sprof = ROOT / "ServingProfile"
    for state in ("running", "succeeded", "failed"):
        copy_to(f"servingprofile/{state}", sprof / "testdata" / f"{state}.yaml")
    for refused in sorted((capture_dir / "servingprofile").glob("refused-*.yaml")):
        copy_to(f"servingprofile/{refused.stem}", sprof / "testdata" / refused.name)
    derive(
        "servingprofile/succeeded",
        sprof / "testdata" / "generation-not-observed.yaml",
        bump_generation,
        "metadata.generation + 1, as after a spec edit the operator has not reconciled yet.",
    )
    derive(
        "servingprofile/running",
        sprof / "testdata" / "no-status.yaml",
        drop_status,
        "status removed, as just after `kubectl apply`, before the operator's first reconcile.",
    )

    for path in written:
        print(path.relative_to(ROOT.parents[3]))
    if missing:
        print(f"missing captures (rerun the cluster tests that write them): {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
