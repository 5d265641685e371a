"""AdapterOps: a Kubernetes operator for LoRA fine-tuning sweeps and canaried adapter serving."""

__version__ = "0.1.0"
