"""What the AdapterOps operator and its trainer both use: the trial contract (`contract`), storage URIs
(`storage`), the LLM judge client (`judge`) and the serving pods' adapter fetcher (`python -m
adapterops_common fetch`). pydantic, httpx and boto3 only: no operator, no torch."""

__version__ = "0.1.0"
