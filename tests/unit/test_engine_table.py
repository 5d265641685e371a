"""The engine table (hack/testworld/engines.py) against the operator: every series and label value the
operator's queries read is one the engine version exports (so a query that reads what an engine does not
have, like an HTTP counter on NIM 1.x, fails here), each version maps to the query set it is tested with,
every fact has a source, the shipped profile table is the chart's, and docs/engines.md is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import generate
from adapterops.analysis.providers.prometheus import QUERIES
from adapterops.config import DEFAULT_NIM_PROFILES
from adapterops.engines import image_tag, line_of
from testworld import engines
from testworld.engines import EngineVersion

REPO = Path(__file__).resolve().parents[2]
NAME = re.compile(r"(?<![\w:\"])([a-zA-Z_][a-zA-Z0-9_:]*)\{")
MATCHER = re.compile(r'([a-zA-Z_]+)(=~|=|!=)"([^"]*)"')
OPERATOR_LABELS = {"namespace", "adapterops_io_revision", "le"}  # added by the scrape, or the histogram's


def read_series(query: str) -> set[str]:
    """Series a PromQL query names: `name{...}`, and `{__name__=~"a|b"}` expanded."""
    names = set(NAME.findall(query))
    for label, op, value in MATCHER.findall(query):
        if label == "__name__" and op == "=~":
            found = re.fullmatch(r"(.*)\((.*)\)(.*)", value)
            assert found is not None, value
            prefix, alternatives, suffix = found.groups()
            names |= {f"{prefix}{a}{suffix}" for a in alternatives.split("|")}
    return names - {"sum", "increase", "rate"}


def exported(version: EngineVersion) -> dict[str, tuple[str, ...]]:
    """Series name -> labels, as the version exports them (histograms with their _bucket, _sum, _count)."""
    out: dict[str, tuple[str, ...]] = {}
    for m in version.metrics:
        if m.type == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[m.name + suffix] = (*m.labels, "le") if suffix == "_bucket" else m.labels
        else:
            out[m.series] = m.labels
    return out


@pytest.mark.parametrize("version", engines.VERSIONS, ids=lambda v: v.key)
def test_the_operator_reads_each_version_with_the_queries_the_table_names(version: EngineVersion) -> None:
    for image in version.images:
        tag = image_tag(image)
        assert tag is not None and line_of(version.engine, tag.removeprefix("v")) == version.line, image


@pytest.mark.parametrize("version", engines.VERSIONS, ids=lambda v: v.key)
@pytest.mark.parametrize(
    "query",
    ["latency", "errors", "requests", "latency_sum", "latency_count", "ttft_sum", "ttft_count", "output_tokens"],
)
def test_every_series_and_label_value_a_query_reads_is_exported_by_the_version(
    version: EngineVersion, query: str
) -> None:
    text = getattr(QUERIES[version.line], query)
    series = exported(version)
    for name in read_series(text):
        assert name in series, f"{version.key} exports no {name} (read by the {query} query: {text})"
        for label, _op, value in MATCHER.findall(text):
            if label in OPERATOR_LABELS or label == "__name__":
                continue
            assert label in series[name], f"{version.key}: {name} has no label {label}"
            metric = version.metric(name.removesuffix("_total").removesuffix("_bucket"))
            values = dict(metric.values) if metric else {}
            if label in values:
                assert value in values[label], f"{version.key}: {name}{{{label}}} is never {value!r}"


def test_nim_1_has_no_http_counter_and_its_error_rate_counts_engine_failures() -> None:
    assert engines.NIM1.http_counter is None
    queries = QUERIES["nim-1"]
    assert "http_requests_total" not in queries.errors + queries.requests
    assert "engine failures" in queries.error_measure


def test_latency_buckets_are_the_engines_own() -> None:
    def first_bounds(version: EngineVersion) -> tuple[float, ...]:
        m = version.metric("e2e_request_latency_seconds") or version.metric("vllm:e2e_request_latency_seconds")
        assert m is not None
        return m.buckets[:3]

    assert first_bounds(engines.NIM1) == (1.0, 2.5, 5.0)
    assert first_bounds(engines.VLLM_0_11) == first_bounds(engines.VLLM_0_34) == (0.3, 0.5, 0.8)


@pytest.mark.parametrize("version", engines.VERSIONS, ids=lambda v: v.key)
def test_every_fact_and_series_has_a_source_and_a_known_status(version: EngineVersion) -> None:
    for source in [f.source for f in version.facts] + [m.source for m in version.metrics]:
        assert source.ref.strip() and source.status in ("V", "3P", "?")
        if source.status == "?":
            assert source.note or "not verified" in source.ref, f"{version.key}: say what is not verified"
    topics = {f.topic for f in version.facts}
    needed = {"port", "metrics path", "HTTP counter", "e2e buckets", "engine error", "adapters", "LoRA rank", "TP"}
    assert needed <= topics, needed - topics


def test_the_shipped_profile_table_is_the_charts_and_the_test_worlds_agrees_with_it() -> None:
    values = yaml.safe_load((REPO / "charts/adapterops/values.yaml").read_text())
    assert values["nimProfiles"] == DEFAULT_NIM_PROFILES
    test_world = engines.nim_profiles()
    for image, table in DEFAULT_NIM_PROFILES.items():
        for key, profile in table.items():
            assert test_world[image][key] == profile, (image, key)


def test_the_stand_in_manifests_have_a_lora_profile_for_every_key_the_tests_use() -> None:
    for version in (engines.NIM1, engines.NIM2):
        for image, manifest in version.profiles.items():
            for gpu in engines.GPUS:
                for tp in (1, 2, 4, 8):
                    assert any(p.lora and p.gpu == gpu and p.tp == tp for p in manifest), (image, gpu, tp)


def test_the_engines_page_is_current() -> None:
    assert generate.main(["--check", "engines-doc"]) == 0, "run `python hack/generate.py engines-doc` and commit"
