"""`python -m adapterops_common fetch ...` (see adapterops_common.cli)."""

import sys

from adapterops_common.cli import main

sys.exit(main())
