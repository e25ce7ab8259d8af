"""``python -m trustrl ...``: the same command line as ``trustrl ...``."""

import sys

from trustrl.cli import main

sys.exit(main())
