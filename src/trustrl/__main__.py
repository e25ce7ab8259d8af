"""``python -m trustrl ...``: the same command line as ``trustrl ...``.

``-m`` puts the working directory first on ``sys.path``; the ``trustrl`` command does not search it, and
neither does this, from here on: a ``numpy.py`` in a run directory or a download must not run
(``python -P -m trustrl`` keeps it off from the start, before ``runpy`` and its imports).
"""

import os
import sys

if not sys.flags.safe_path and sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from trustrl.cli import main  # noqa: E402

sys.exit(main())
