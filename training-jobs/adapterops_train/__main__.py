"""`python -m adapterops_train run` (see adapterops_train.cli)."""

import sys

from adapterops_train.cli import main

sys.exit(main())
