"""Client traffic for ModelDeployments in the local cluster, standing in for a Service or a Gateway.

Loopback pod IPs cannot be Service endpoints, so this load generator does what kube-proxy (replica
ratio: every ready serving pod alike) or a Gateway (HTTPRoute backendRef weights) would do: it picks a
ready pod per request and sends an OpenAI chat completion for one of the shipped challenge prompts.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from typing import Any

from testworld.cluster import REPO, LocalCluster

PROMPTS = [
    json.loads(line)
    for line in (REPO / "training-jobs/datasets/commerce/challenge.jsonl").read_text().splitlines()
    if line.strip()
]


class Traffic:
    def __init__(
        self, cluster: LocalCluster, namespace: str, md: str, model: str, rate: float = 30.0, workers: int = 6
    ) -> None:
        self.cluster, self.namespace, self.md, self.model = cluster, namespace, md, model
        self.rate, self.workers = rate, workers
        self.pods: list[tuple[str, str, str]] = []  # (pod ip, revision, ready)
        self.route: dict[str, int] | None = None
        self.sent = 0
        self.errors = 0
        self.first_served: dict[str, float] = {}  # revision -> time.monotonic() of its first answered request
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, route: str | None = None) -> Traffic:
        self._route_name = route
        self._threads = [threading.Thread(target=self._refresh, daemon=True)]
        self._threads += [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(self.workers)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def _refresh(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self.cluster.get("pods", "-n", self.namespace, "-l", f"adapterops.io/modeldeployment={self.md}")[
                    "items"
                ]
                self.pods = [
                    (p["status"]["podIP"], p["metadata"]["labels"]["adapterops.io/revision"], "ready")
                    for p in pods
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in p.get("status", {}).get("conditions", [])
                    )
                    and p["status"].get("podIP")
                    and not p["metadata"].get("deletionTimestamp")
                ]
                if self._route_name:
                    route = self.cluster.get("httproute", self._route_name, "-n", self.namespace)
                    refs = route["spec"]["rules"][0].get("backendRefs", [])
                    self.route = {r["name"].rsplit("-", 1)[-1]: int(r.get("weight", 1)) for r in refs}
            except Exception:
                pass
            time.sleep(0.5)

    def _pick(self, rng: random.Random) -> str | None:
        pods = list(self.pods)
        if not pods:
            return None
        if self.route:
            revisions = [rev for rev, w in self.route.items() if w > 0 and any(p[1] == rev for p in pods)]
            if not revisions:
                return None
            rev = rng.choices(revisions, weights=[self.route[r] for r in revisions])[0]
            pods = [p for p in pods if p[1] == rev]
        return rng.choice(pods)[0]

    def _send(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self._stop.is_set():
            interval = self.workers / self.rate  # read each time: a benchmark may ramp the rate
            ip = self._pick(rng)
            if ip is not None:
                row = rng.choice(PROMPTS)
                body = {
                    "model": self.model,
                    "messages": [
                        {"role": "system", "content": row["system"]},
                        {"role": "user", "content": row["prompt"]},
                    ],
                }
                request = urllib.request.Request(
                    f"http://{ip}:8000/v1/chat/completions",
                    data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=10):
                        pass
                    revision = next((p[1] for p in self.pods if p[0] == ip), "")
                    self.first_served.setdefault(revision, time.monotonic())
                except OSError:
                    self.errors += 1
                self.sent += 1
            time.sleep(interval * rng.uniform(0.5, 1.5))


def stats(traffic: Traffic) -> dict[str, Any]:
    return {"sent": traffic.sent, "errors": traffic.errors}
