"""Whether the operator can run a ServingProfile: every candidate must be servable as a ModelDeployment
revision would be (a known GPU class, TP within a node, a known engine version, a NIM profile in the
table), and no candidate listed twice. A Refusal names the candidate's field."""

from __future__ import annotations

from typing import Any

from adapterops.api.names import object_name_problem
from adapterops.api.servingprofile import ServingProfileSpec
from adapterops.config import Config
from adapterops.deploy.engine import image_of, nim_profile, version_of
from adapterops.runtime.acceptance import Refusal, parse_spec
from adapterops.servingprofile.builders import candidate_name, candidate_spec


def accept(name: str, spec_doc: dict[str, Any], config: Config) -> ServingProfileSpec:
    if problem := object_name_problem(name):
        raise Refusal("InvalidName", problem)
    spec = parse_spec(ServingProfileSpec, spec_doc)
    seen: dict[tuple[str, str], int] = {}
    for i, c in enumerate(spec.candidates):
        field = f"spec.candidates[{i}]"
        gpu = config.gpu_class(c.gpu_type, f"{field}.gpuType")
        if c.tensor_parallel_size > gpu.gpus_per_node:
            raise Refusal(
                "TensorParallelTooLarge",
                f"{field}.tensorParallelSize: {c.tensor_parallel_size} GPUs per replica, but {c.gpu_type} nodes "
                f"have {gpu.gpus_per_node}; use at most {gpu.gpus_per_node}",
            )
        served = candidate_spec(spec, c)
        identity = (candidate_name(c), image_of(served, config))
        if identity in seen:
            raise Refusal(
                "DuplicateCandidate",
                f"{field}: {identity[0]} with image {identity[1]} is candidate {seen[identity]} already; "
                "list each configuration once",
            )
        seen[identity] = i
        try:
            version_of(served, config)
            nim_profile(served, config)
        except Refusal as refusal:  # said of spec.runtime: say which candidate
            raise Refusal(refusal.reason, f"{field} ({identity[0]}): {refusal.message}") from refusal
    return spec
