"""`python -m adapterops`: run the operator (kopf) with the configuration from the environment."""

from __future__ import annotations

import logging
import os
import sys

import kopf
from prometheus_client import start_http_server

from adapterops.config import Config, ConfigError
from adapterops.runtime import handlers  # noqa: F401  (registers the handlers)


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("ADAPTEROPS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"adapterops: bad configuration: {exc}", file=sys.stderr)
        return 2
    start_http_server(config.metrics_port, addr=config.bind_address)
    kopf.run(
        standalone=True,  # one replica (Recreate strategy); no peering objects needed
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://{config.bind_address}:{config.health_port}/healthz",
        memo=kopf.Memo(config=config),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
