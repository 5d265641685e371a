"""The operator's configuration comes from the environment and refuses bad values clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapterops.config import Config, ConfigError

CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "adapterops" / "values.yaml"


def write_classes(tmp_path: Path, classes: object) -> Path:
    path = tmp_path / "gpu-classes.yaml"
    path.write_text(yaml.safe_dump(classes))
    return path


def test_chart_gpu_classes_load(tmp_path: Path) -> None:
    classes = yaml.safe_load(CHART_VALUES.read_text())["gpuClasses"]
    config = Config.from_env({"ADAPTEROPS_GPU_CLASSES_FILE": str(write_classes(tmp_path, classes))})
    assert set(config.gpu_classes) == {"H100", "B200"}
    h100 = config.gpu_classes["H100"]
    assert h100.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert h100.memory_gib == 80 and h100.price_per_hour > 0 and h100.gpus_per_node == 8


def test_defaults_watch_the_whole_cluster(tmp_path: Path) -> None:
    config = Config.from_env({"ADAPTEROPS_GPU_CLASSES_FILE": str(write_classes(tmp_path, {}))})
    assert config.namespaces == () and config.health_port == 8080 and config.pod_labels == {}


def test_namespaces_and_pod_labels_parse(tmp_path: Path) -> None:
    config = Config.from_env(
        {
            "ADAPTEROPS_GPU_CLASSES_FILE": str(write_classes(tmp_path, {})),
            "ADAPTEROPS_NAMESPACES": "team-a, team-b",
            "ADAPTEROPS_POD_LABELS": '{"cost-center": "ml"}',
        }
    )
    assert config.namespaces == ("team-a", "team-b")
    assert config.pod_labels == {"cost-center": "ml"}


def test_missing_gpu_class_table_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ADAPTEROPS_GPU_CLASSES_FILE"):
        Config.from_env({"ADAPTEROPS_GPU_CLASSES_FILE": str(tmp_path / "missing.yaml")})


def test_bad_gpu_class_is_refused(tmp_path: Path) -> None:
    path = write_classes(tmp_path, {"H100": {"nodeSelector": {}, "pricePerHour": -1, "memoryGiB": 80}})
    with pytest.raises(ConfigError, match="pricePerHour"):
        Config.from_env({"ADAPTEROPS_GPU_CLASSES_FILE": str(path)})


def test_pod_labels_must_be_a_json_object(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ADAPTEROPS_POD_LABELS must be a JSON object"):
        Config.from_env(
            {"ADAPTEROPS_GPU_CLASSES_FILE": str(write_classes(tmp_path, {})), "ADAPTEROPS_POD_LABELS": "a=b"}
        )


def test_egress_defaults_allow_nothing_a_tenant_names(tmp_path: Path) -> None:
    """Outside the chart (no settings), the operator calls no tenant-named URL: fail closed."""
    config = Config.from_env({"ADAPTEROPS_GPU_CLASSES_FILE": str(write_classes(tmp_path, {}))})
    assert config.allowed_prometheus_urls == () and config.allowed_judge_endpoints == ()
    assert config.allowed_s3_endpoints == () and config.judge_dataset_max_bytes == 16 << 20


def test_egress_settings_parse_to_canonical_prefixes(tmp_path: Path) -> None:
    config = Config.from_env(
        {
            "ADAPTEROPS_GPU_CLASSES_FILE": str(write_classes(tmp_path, {})),
            "ADAPTEROPS_ALLOWED_PROMETHEUS_URLS": "http://Thanos.monitoring:9090/, http://prom.team-a:9090",
            "ADAPTEROPS_ALLOWED_JUDGE_ENDPOINTS": "https://judge.internal:443/v1",
            "ADAPTEROPS_ALLOWED_S3_ENDPOINTS": "",
            "ADAPTEROPS_JUDGE_DATASET_MAX_BYTES": "1024",
        }
    )
    assert config.allowed_prometheus_urls == ("http://thanos.monitoring:9090", "http://prom.team-a:9090")
    assert config.allowed_judge_endpoints == ("https://judge.internal/v1",)
    assert config.allowed_s3_endpoints == () and config.judge_dataset_max_bytes == 1024


def test_a_bad_allowlist_entry_names_the_variable_and_the_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ADAPTEROPS_ALLOWED_JUDGE_ENDPOINTS entry 'https://a@judge' has userinfo"):
        Config.from_env(
            {
                "ADAPTEROPS_GPU_CLASSES_FILE": str(write_classes(tmp_path, {})),
                "ADAPTEROPS_ALLOWED_JUDGE_ENDPOINTS": "https://judge.internal/v1,https://a@judge",
            }
        )


def test_allowing_any_url_warns_at_startup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    Config.from_env(
        {"ADAPTEROPS_GPU_CLASSES_FILE": str(write_classes(tmp_path, {})), "ADAPTEROPS_ALLOWED_JUDGE_ENDPOINTS": "*"}
    )
    assert "ADAPTEROPS_ALLOWED_JUDGE_ENDPOINTS allows any URL" in caplog.text


def test_the_charts_egress_defaults_parse_and_allow_only_nvidias_hosted_judge(tmp_path: Path) -> None:
    egress = yaml.safe_load(CHART_VALUES.read_text())["egress"]
    config = Config.from_env(
        {
            "ADAPTEROPS_GPU_CLASSES_FILE": str(write_classes(tmp_path, {})),
            "ADAPTEROPS_ALLOWED_PROMETHEUS_URLS": ",".join(egress["allowedPrometheusUrls"]),
            "ADAPTEROPS_ALLOWED_JUDGE_ENDPOINTS": ",".join(egress["allowedJudgeEndpoints"]),
            "ADAPTEROPS_ALLOWED_S3_ENDPOINTS": ",".join(egress["allowedS3Endpoints"]),
            "ADAPTEROPS_JUDGE_DATASET_MAX_BYTES": str(egress["judgeDatasetMaxBytes"]),
        }
    )
    assert config.allowed_judge_endpoints == ("https://integrate.api.nvidia.com/v1",)
    assert config.allowed_prometheus_urls == () and config.allowed_s3_endpoints == ()
    assert config.judge_dataset_max_bytes == 16 << 20
