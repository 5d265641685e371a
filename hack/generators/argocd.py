"""Argo CD's argocd-cm entries (manifests/argocd/argocd-cm.yaml), from the Lua health checks and actions.

The Go harness hack/argocd-lua writes them (`argocd-cm` command), the same program that runs the
Lua in Argo CD's engine, so the file holds exactly the scripts the tests ran.
"""

from __future__ import annotations

from pathlib import Path

from generators import Files, build_tool, run_tool

CUSTOMIZATIONS = "manifests/argocd/resource_customizations"
ARGOCD_CM = "manifests/argocd/argocd-cm.yaml"


def argocd_cm(root: Path) -> Files:
    harness = build_tool(root, "build-argocd-lua.sh")
    return {ARGOCD_CM: run_tool([harness, "argocd-cm", root / CUSTOMIZATIONS], "hack/argocd-lua argocd-cm")}
