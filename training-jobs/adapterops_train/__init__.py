"""Code that runs inside AdapterOps trial pods: data, LoRA training, export, judging, result reporting."""

__version__ = "0.1.0"
