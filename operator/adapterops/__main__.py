"""`python -m adapterops`: run the operator with the configuration from the environment."""

from __future__ import annotations

import logging
import os
import sys

from adapterops.config import Config, ConfigError
from adapterops.deploy.reconciler import ModelDeploymentReconciler
from adapterops.finetune.reconciler import FineTuneJobReconciler
from adapterops.runtime.manager import serve
from adapterops.servingprofile.reconciler import ServingProfileReconciler

RECONCILERS = (FineTuneJobReconciler, ModelDeploymentReconciler, ServingProfileReconciler)


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("ADAPTEROPS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request is noise
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"adapterops: bad configuration: {exc}", file=sys.stderr)
        return 2
    return serve(config, RECONCILERS)


if __name__ == "__main__":
    sys.exit(main())
