"""The serving profile's pure parts: cost, the SLO check, the choice rule and why each candidate lost, the
candidates' Deployments and load Jobs, revisions, status and Events, acceptance, the load report, and the
stand-in engine's GPU/TP latency factors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from restricted_profile import violations

from adapterops.api.servingprofile import CandidateResult, ServingProfileSpec, ServingProfileStatus
from adapterops.config import Config, GpuClass
from adapterops.deploy import builders as serving
from adapterops.runtime.acceptance import Refusal
from adapterops.servingprofile import builders
from adapterops.servingprofile.acceptance import accept
from adapterops.servingprofile.choice import Measurement, choose, cost_per_hour, cost_per_million_tokens, measured
from adapterops.servingprofile.observe import LoadReport, parse_report
from adapterops.servingprofile.status import profile_status, transitions
from testworld.engines import nim_profiles
from testworld.nim import PAPER_LATENCY, hardware_factor, hardware_table

CONFIG = Config(
    gpu_classes={
        "H100": GpuClass.model_validate(
            {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "pricePerHour": 4.5, "memoryGiB": 80}
        ),
        "B200": GpuClass.model_validate(
            {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-B200"}, "pricePerHour": 7.8, "memoryGiB": 180}
        ),
    },
    nim_profiles=nim_profiles(),
    pod_labels={"kwok.adapterops.io/kubelet": "harness"},
)
OWNER = {
    "apiVersion": "adapterops.io/v1alpha1",
    "kind": "ServingProfile",
    "metadata": {"name": "tp-gpu", "namespace": "ml", "uid": "0000-profile-uid"},
}
FOUR = [
    {"tensorParallelSize": 1, "gpuType": "H100"},
    {"tensorParallelSize": 4, "gpuType": "H100"},
    {"tensorParallelSize": 1, "gpuType": "B200"},
    {"tensorParallelSize": 4, "gpuType": "B200"},
]


def spec_doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "baseModel": {"name": "tiny-llama"},
        "adapters": [{"name": "commerce", "uri": "pvc://work/adapters/v1"}],
        "candidates": FOUR,
        "load": {"prompts": "configmap://prompts/prompts.jsonl", "requestsPerSecond": 10, "durationSeconds": 60},
        "slo": {"latency": {"quantile": 0.95, "maxSeconds": 2.0}},
    }
    return doc | over


def spec(**over: Any) -> ServingProfileSpec:
    return ServingProfileSpec.model_validate(spec_doc(**over))


def row(s: ServingProfileSpec, i: int) -> CandidateResult:
    c = s.candidates[i]
    price = CONFIG.gpu_classes[c.gpu_type].price_per_hour
    return CandidateResult(
        name=builders.candidate_name(c),
        engine=c.engine,
        tensor_parallel_size=c.tensor_parallel_size,
        gpu_type=c.gpu_type,
        image="nvcr.io/nim/x:1.8",
        revision=f"rev{i}",
        state="Pending",
        cost_per_hour=cost_per_hour(price, c.tensor_parallel_size),
    )


def window(p95: float, rps: float = 10.0, tokens_per_request: float = 50.0, errors: float = 0.0) -> Measurement:
    n = rps * 60
    return Measurement(
        seconds=60.0,
        requests=n,
        latency_sum=n * p95 / 1.5,
        ttft_sum=n * p95 / 15,
        ttft_count=n,
        output_tokens=n * tokens_per_request,
        errors=errors,
        error_base=n,
        p50=p95 / 1.5,
        p95=p95,
        slo_quantile=p95,
    )


# ------------------------------------------------------------------------------------------- cost


def test_cost_per_hour_is_the_gpu_class_price_times_tp() -> None:
    assert cost_per_hour(4.5, 1) == 4.5
    assert cost_per_hour(4.5, 4) == 18.0
    assert cost_per_hour(7.8, 2) == 15.6


def test_cost_per_million_tokens_is_the_hour_over_the_tokens_generated_in_it() -> None:
    # $18/h at 500 tokens/s: 1.8 M tokens an hour -> $10 per million.
    assert cost_per_million_tokens(18.0, 500.0) == pytest.approx(10.0)
    assert cost_per_million_tokens(18.0, 0.0) is None and cost_per_million_tokens(18.0, None) is None


def test_a_measurement_becomes_a_row_with_means_rates_and_the_slo_verdict() -> None:
    s = spec()
    r = measured(row(s, 0), window(1.5, tokens_per_request=50), s)
    assert r.state == "Measured" and r.requests == 600
    assert r.requests_per_second == pytest.approx(10.0)
    assert r.output_tokens_per_second == pytest.approx(500.0)
    assert r.mean_seconds == pytest.approx(1.0) and r.ttft_seconds == pytest.approx(0.1)
    assert r.cost_per_million_tokens == pytest.approx(4.5 / (500 * 3600) * 1e6)
    assert r.meets_slo is True and r.reason == ""


@pytest.mark.parametrize(
    ("m", "why"),
    [
        (window(2.4), "p95 2.4s > 2s"),
        (window(1.0, errors=30), "errors 5% > 1%"),
        (window(1.0, rps=8.0), "served 8 req/s < 9 req/s"),  # 90% of the offered 10 req/s by default
    ],
)
def test_a_candidate_missing_the_slo_says_which_bound_and_by_how_much(m: Measurement, why: str) -> None:
    s = spec()
    r = measured(row(s, 0), m, s)
    assert r.meets_slo is False and why in r.reason


# ------------------------------------------------------------------------------------------- the choice


def test_the_cheapest_candidate_meeting_the_slo_is_chosen_and_every_other_says_why_it_lost() -> None:
    s = spec()
    # H100 TP1 meets it at $4.5/h, B200 TP1 too but at $7.8/h; both TP4 miss the latency bound.
    p95 = [1.8, 2.7, 1.2, 2.2]
    rows = [measured(row(s, i), window(p), s) for i, p in enumerate(p95)]
    out, choice = choose(rows, s)
    assert choice is not None and choice.candidate == "nim-tp1-h100"
    assert (choice.tensor_parallel_size, choice.gpu_type, choice.cost_per_hour) == (1, "H100", 4.5)
    assert [r.chosen for r in out] == [True, False, False, False]
    assert out[0].reason.startswith("cheapest meeting the SLO")
    assert out[1].reason == "misses the SLO: p95 2.7s > 2s"
    assert out[2].reason.startswith("meets the SLO but costs more") and "$4.333" in out[2].reason
    assert out[3].reason == "misses the SLO: p95 2.2s > 2s"


def test_the_objective_decides_between_cost_per_hour_and_cost_per_token() -> None:
    # Closed loop: the B200 serves twice the tokens per second of H100 for 1.73x the hourly price.
    s = spec(load={"prompts": "configmap://p/k", "concurrency": 8}, candidates=FOUR[0:1] + FOUR[2:3])
    rows = [measured(row(s, 0), window(1.0, rps=10), s), measured(row(s, 1), window(0.5, rps=20), s)]
    _, per_token = choose(rows, s)
    assert per_token is not None and per_token.gpu_type == "B200"
    _, per_hour = choose(rows, s.model_copy(update={"objective": "costPerHour"}))
    assert per_hour is not None and per_hour.gpu_type == "H100"


def test_no_candidate_meeting_the_slo_is_no_choice_with_every_reason() -> None:
    s = spec()
    rows = [measured(row(s, i), window(3.0), s) for i in range(4)]
    rows[3] = rows[3].model_copy(update={"state": "Failed", "reason": "failed: not Ready within 1800s"})
    out, choice = choose(rows, s)
    assert choice is None and not any(r.chosen for r in out)
    assert out[0].reason == "misses the SLO: p95 3s > 2s" and out[3].reason == "failed: not Ready within 1800s"


# ------------------------------------------------------------------------------------------- status and Events


def test_the_status_runs_then_succeeds_with_the_choice_and_events_for_each_transition() -> None:
    s = spec()
    pending = [row(s, i) for i in range(4)]
    running = profile_status(
        ServingProfileStatus(), s, [pending[0].model_copy(update={"state": "Loading"}), *pending[1:]], 1
    )
    assert running.state == "Running" and running.progress == "0/4"
    assert [(c.type, c.status, c.reason) for c in running.conditions][1:] == [
        ("Running", "True", "Measuring"),
        ("Succeeded", "False", "Measuring"),
    ]
    assert transitions(ServingProfileStatus(), running) == [
        ("CandidateLoading", f"nim-tp1-h100: load started ({running.slo})", "Normal")
    ]
    done = [measured(r, window(p), s) for r, p in zip(pending, [1.8, 2.7, 1.2, 2.2], strict=True)]
    finished = profile_status(running, s, done, 1)
    assert finished.state == "Succeeded" and finished.choice is not None and finished.progress == "4/4"
    succeeded = next(c for c in finished.conditions if c.type == "Succeeded")
    assert (succeeded.status, succeeded.reason) == ("True", "ChoiceMade")
    reasons = [reason for reason, _, _ in transitions(running, finished)]
    assert reasons == ["CandidateMeasured"] * 4 + ["ChoiceMade"]


def test_no_candidate_meeting_the_slo_fails_the_profile_with_a_warning() -> None:
    s = spec()
    done = [measured(row(s, i), window(2.5), s) for i in range(4)]
    failed = profile_status(ServingProfileStatus(), s, done, 1)
    assert failed.state == "Failed" and failed.choice is None
    cond = next(c for c in failed.conditions if c.type == "Succeeded")
    assert cond.reason == "NoCandidateMeetsSLO" and "nim-tp4-b200: misses the SLO: p95 2.5s > 2s" in cond.message
    assert ("NoCandidateMeetsSLO", cond.message, "Warning") in transitions(ServingProfileStatus(), failed)


# ------------------------------------------------------------------------------------------- builders


def test_a_candidate_is_deployed_as_a_modeldeployment_revision_would_be_but_as_the_profiles_child() -> None:
    s = spec()
    c = s.candidates[3]  # B200, TP 4
    adapters = {"commerce": "pvc://work/adapters/v1"}
    d = builders.candidate_deployment(OWNER, s, c, adapters, "abc123", CONFIG)
    same = serving.revision_deployment(OWNER, builders.candidate_spec(s, c), adapters, "abc123", 1, CONFIG)
    pod, reference = d["spec"]["template"]["spec"], same["spec"]["template"]["spec"]
    assert pod == reference  # the same engine container, fetcher, volumes and placement
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-B200"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert serving.LABEL_MD_UID not in labels and serving.LABEL_MD not in labels  # never a ModelDeployment's
    assert labels[builders.LABEL_PROFILE_UID] == "0000-profile-uid" and labels[serving.LABEL_REVISION] == "abc123"
    assert labels[serving.LABEL_COMPONENT] == "serving"  # scraped like serving pods
    assert d["spec"]["replicas"] == 1 and d["metadata"]["ownerReferences"][0]["uid"] == "0000-profile-uid"
    assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert violations({"metadata": {}, "spec": pod}) == []


def test_the_load_job_is_a_restricted_client_of_the_candidate_pod() -> None:
    s = spec()
    job = builders.load_job(OWNER, s, s.candidates[0], "abc123", "http://10.0.0.7:8000", CONFIG)
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    command = container["command"]
    assert command[:4] == ["python", "-m", "adapterops_common", "load"]
    assert command[command.index("--url") + 1] == "http://10.0.0.7:8000"
    assert command[command.index("--rate") + 1] == "10" and command[command.index("--duration") + 1] == "60"
    assert command[command.index("--prompts") + 1] == "/prompts/prompts.jsonl"
    assert command[command.index("--model") + 1] == "commerce"  # the first adapter
    assert {
        "name": "prompts",
        "configMap": {"name": "prompts", "items": [{"key": "prompts.jsonl", "path": "prompts.jsonl"}]},
    } in pod["volumes"]
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 30 + 60 + 120
    assert container["image"] == CONFIG.fetcher_image
    assert violations({"metadata": {}, "spec": pod}) == []
    assert "prometheus.io/scrape" not in (job["spec"]["template"]["metadata"].get("annotations") or {})


def test_revisions_are_per_profile_candidate_and_load() -> None:
    s = spec()
    adapters = {"commerce": "pvc://work/adapters/v1"}
    revs = [builders.candidate_revision("uid-a", s, c, adapters, CONFIG) for c in s.candidates]
    assert len(set(revs)) == 4
    assert builders.candidate_revision("uid-b", s, s.candidates[0], adapters, CONFIG) != revs[0]
    slower = spec(load={**spec_doc()["load"], "requestsPerSecond": 20})
    assert builders.candidate_revision("uid-a", slower, slower.candidates[0], adapters, CONFIG) != revs[0]
    assert builders.candidate_revision("uid-a", s, s.candidates[0], adapters, CONFIG) == revs[0]


# ------------------------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize(
    ("candidates", "reason", "words"),
    [
        ([{"gpuType": "L4"}], "UnknownGpuClass", "spec.candidates[0].gpuType"),
        ([{"gpuType": "H100"}, {"gpuType": "H100"}], "DuplicateCandidate", "spec.candidates[1]: nim-tp1-h100"),
        ([{"gpuType": "H100", "tensorParallelSize": 8}, {"gpuType": "H100", "tensorParallelSize": 2}], None, ""),
    ],
)
def test_acceptance_names_the_candidate(candidates: list[dict[str, Any]], reason: str | None, words: str) -> None:
    doc = spec_doc(candidates=candidates)
    if reason is None:
        assert len(accept("p", doc, CONFIG).candidates) == len(candidates)
        return
    with pytest.raises(Refusal) as refused:
        accept("p", doc, CONFIG)
    assert words in refused.value.message


def test_a_nim_profile_missing_from_the_table_is_refused_naming_the_candidate() -> None:
    bare = CONFIG.model_copy(update={"nim_profiles": {}})
    with pytest.raises(Refusal) as refused:
        accept("p", spec_doc(), bare)
    assert refused.value.message.startswith("spec.candidates[0] (nim-tp1-h100): ")


# ------------------------------------------------------------------------------------------- the load report


def test_the_load_report_is_read_or_refused_with_the_reason() -> None:
    good = json.dumps({"start": 100.0, "end": 160.0, "sent": 600, "ok": 599, "errors": 1})
    assert parse_report(good) == LoadReport(100.0, 160.0, 600, 599, 1)
    assert parse_report(None) == "the load container left no report in its termination message"
    assert "not the load generator's JSON" in str(parse_report("Error: OOMKilled"))
    assert parse_report(json.dumps({"start": 1, "end": 1, "sent": 0, "ok": 0, "errors": 0})) == (
        "the load report's window is empty"
    )


# ------------------------------------------------------------------------------------------- the stand-in


def test_the_standin_default_latency_factors_are_the_papers_figures() -> None:
    h100, b200 = PAPER_LATENCY["H100"], PAPER_LATENCY["B200"]
    for tp, faster in ((1, 0.35), (2, 0.18), (4, 0.06)):  # B200 faster than H100 by 35% / 18% / 6%
        assert b200[tp] / h100[tp] == pytest.approx(1 - faster)
    assert h100[4] / h100[1] == pytest.approx(1.5)  # TP 4 slower than TP 1 by 50% on H100
    # The paper's 27% for B200 TP 4 vs TP 1 does not follow from the figures above (module docstring).
    assert b200[4] / b200[1] == pytest.approx(1.5 * 0.94 / 0.65)


def test_the_standin_factor_follows_the_gpu_product_and_tp_and_a_tests_own_table() -> None:
    assert hardware_factor(PAPER_LATENCY, "NVIDIA-B200", 1) == pytest.approx(0.65)
    assert hardware_factor(PAPER_LATENCY, "NVIDIA-H100-80GB-HBM3", 4) == pytest.approx(1.5)
    assert hardware_factor(PAPER_LATENCY, "NVIDIA-L4", 1) == 1.0
    table = hardware_table(json.dumps({"H100": {"1": 1.0, "4": 1.5}, "B200": {"1": 0.65, "4": 0.8255}}))
    assert hardware_factor(table, "NVIDIA-B200", 4) == pytest.approx(0.8255)
    assert hardware_factor(table, "NVIDIA-B200", 2) == 1.0


def test_the_examples_profile_is_a_valid_spec() -> None:
    import yaml

    path = Path(__file__).resolve().parents[2] / "manifests/examples/servingprofile-tp-gpu.yaml"
    doc = yaml.safe_load(path.read_text())
    s = accept(doc["metadata"]["name"], doc["spec"], CONFIG)
    assert {(c.tensor_parallel_size, c.gpu_type) for c in s.candidates} == {
        (tp, gpu) for tp in (1, 2, 4) for gpu in ("H100", "B200")
    }
