"""Churn: 1000 create/delete cycles of small FineTuneJobs (suspended) and ModelDeployments (waiting for a
champion) leave the operator's memory where it was: everything it keeps per object goes with the object."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from chaos_helpers import figure, settled_rss
from kubernetes import client, config
from test_finetune_e2e import sweep
from test_modeldeployment_e2e import deployment

from testworld.cluster import LocalCluster, OperatorProcess, wait_for

GROUP, VERSION = "adapterops.io", "v1alpha1"
BATCH = 50  # objects of each kind alive at once
WARM_UP, CYCLES = 100, 1000


def objects(index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    ftj = sweep(f"churn-{index:04d}", suspend=True)
    md = deployment(f"churn-{index:04d}", "unused")
    md["spec"]["adapters"] = [{"name": "commerce", "fineTuneJobRef": {"name": "absent"}}]
    return ftj, md


class Churn:
    """Creates a batch of both kinds, waits until the operator has written each one's status, deletes them,
    and waits until they are gone: a cycle per object pair."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.namespace = namespace
        self.api = client.CustomObjectsApi(config.new_client_from_config(str(cluster.kubeconfig)))
        self.done = 0

    def _list(self, plural: str) -> list[dict[str, Any]]:
        return list(self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)["items"])

    def cycles(self, count: int) -> None:
        for start in range(self.done, self.done + count, BATCH):
            batch = [objects(i) for i in range(start, min(start + BATCH, self.done + count))]
            for ftj, md in batch:
                self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "finetunejobs", ftj)
                self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "modeldeployments", md)
            self._wait(lambda: all(o.get("status", {}).get("state") for o in self._list("finetunejobs")))
            self._wait(lambda: all(o.get("status", {}).get("conditions") for o in self._list("modeldeployments")))
            for ftj, md in batch:
                for plural, body in (("finetunejobs", ftj), ("modeldeployments", md)):
                    name = body["metadata"]["name"]
                    self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)
            self._wait(lambda: not self._list("finetunejobs") and not self._list("modeldeployments"))
        self.done += count

    @staticmethod
    def _wait(predicate: Callable[[], bool]) -> None:
        wait_for(predicate, 120, "the operator to catch up with the churn", interval=0.5)


@pytest.mark.slow
def test_the_operators_memory_returns_to_its_level_after_1000_create_delete_cycles(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    churn = Churn(cluster, namespace)
    churn.cycles(WARM_UP)  # first-time costs (imports, caches, pools) are paid before the baseline
    before = settled_rss(operator)
    started = time.monotonic()
    churn.cycles(CYCLES)
    figure("churn", f"{CYCLES} create/delete cycles (FineTuneJob + ModelDeployment)", time.monotonic() - started)
    after = settled_rss(operator)
    change = (after - before) / before
    figure("churn", "operator RSS change, settled", 100 * change, "%", before_mib=before >> 20, after_mib=after >> 20)
    assert abs(change) <= 0.10, f"RSS {before >> 20} MiB -> {after >> 20} MiB ({100 * change:+.1f}%)"
