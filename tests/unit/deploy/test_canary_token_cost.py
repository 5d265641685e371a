"""Cost per million output tokens of stable vs canary: measured at each look of the canary's analysis
(output tokens/s per side, scripted here; the query has its own test), written into
status.estimatedMonthlyCost and exported as adapterops_cost_per_million_tokens_usd."""

from __future__ import annotations

import pytest
from deploy_fixtures import CONFIG, NAME, NAMESPACE, World, md_spec
from prometheus_client import REGISTRY
from test_modeldeployment_states import serving, start_canary

from adapterops.api.modeldeployment import Cost

PRICE = CONFIG.gpu_classes["H100"].price_per_hour


def token_cost_series(role: str) -> float | None:
    labels = {"namespace": NAMESPACE, "modeldeployment": NAME, "role": role}
    return REGISTRY.get_sample_value("adapterops_cost_per_million_tokens_usd", labels)


def per_million(cost: Cost, tokens_per_second: float) -> float:
    return cost.gpus * PRICE / (tokens_per_second * 3600) * 1e6


async def test_each_look_prices_a_million_output_tokens_of_both_sides_from_their_throughput(world: World) -> None:
    await serving(world)
    await start_canary(world)
    world.analysis.tokens_per_second = {"stable": 900.0, "canary": 300.0}
    world.clock.advance(10)
    looked = await world.reconcile()
    cost = looked.status.estimated_monthly_cost
    assert cost is not None and cost.stable is not None and cost.canary is not None
    assert (cost.stable.output_tokens_per_second, cost.canary.output_tokens_per_second) == (900.0, 300.0)
    assert cost.stable.cost_per_million_tokens == pytest.approx(per_million(cost.stable, 900.0), rel=1e-3)
    assert cost.canary.cost_per_million_tokens == pytest.approx(per_million(cost.canary, 300.0), rel=1e-3)
    assert token_cost_series("stable") == cost.stable.cost_per_million_tokens
    assert token_cost_series("canary") == cost.canary.cost_per_million_tokens
    # Measured over the current step's split only, not since the canary began at weight 0.
    assert world.analysis.throughput_windows[-1] == pytest.approx(10.0)


async def test_a_reconcile_without_a_look_keeps_the_figures_and_a_side_without_data_has_none(world: World) -> None:
    await serving(world)
    await start_canary(world)
    world.analysis.tokens_per_second = {"stable": 900.0}  # Prometheus has no tokens of the canary yet
    looked = await world.reconcile()
    cost = looked.status.estimated_monthly_cost
    assert cost is not None and cost.stable is not None and cost.canary is not None
    assert cost.canary.output_tokens_per_second is None and cost.canary.cost_per_million_tokens is None
    assert token_cost_series("canary") is None and token_cost_series("stable") is not None

    world.edit({"canary": {"paused": True}})  # paused: no analysis, no look
    looks = len(world.analysis.throughput_windows)
    held = await world.reconcile()
    assert len(world.analysis.throughput_windows) == looks
    kept = held.status.estimated_monthly_cost
    assert kept is not None and kept.stable == cost.stable


async def test_a_promoted_canary_does_not_carry_its_canary_share_figure_into_stable(world: World) -> None:
    await serving(world)
    canary = await start_canary(world)
    world.analysis.tokens_per_second = {"stable": 900.0, "canary": 300.0}
    world.analysis.script(latency="Pass", errorRate="Pass")
    await world.reconcile()  # step 1 passes: 100%
    promoted = await world.reconcile()
    assert promoted.stable.revision == canary and promoted.status.canary is None
    cost = promoted.status.estimated_monthly_cost
    assert cost is not None and cost.stable is not None and cost.canary is None
    assert cost.stable.cost_per_million_tokens is None  # measured at 50% on fewer GPUs: not stable's figure
    assert token_cost_series("stable") is None and token_cost_series("canary") is None


async def test_at_the_100_percent_step_stable_serves_no_traffic_and_has_no_price(world: World) -> None:
    world.route("agent")
    await serving(world, md_spec(route="agent"))
    canary = await start_canary(world)
    world.analysis.script(latency="Pass", errorRate="Pass")
    await world.reconcile()  # step 1 (50%) passes
    await world.reconcile()  # the last step's capacity is scaled up
    world.run_pods(canary)
    world.analysis.script(latency="Inconclusive", errorRate="Pass")
    world.analysis.tokens_per_second = {"stable": 3.0, "canary": 900.0}  # stable: the judge's prompts only
    world.clock.advance(15)
    looked = await world.reconcile()
    assert (looked.canary.weight, looked.stable.weight) == (100, 0)
    cost = looked.status.estimated_monthly_cost
    assert cost is not None and cost.stable is not None and cost.canary is not None
    assert cost.stable.output_tokens_per_second == 3.0 and cost.stable.cost_per_million_tokens is None
    assert cost.canary.cost_per_million_tokens == pytest.approx(per_million(cost.canary, 900.0), rel=1e-3)
