"""A sampling worker process: ``python -m trustrl.worker FD`` serves a FragmentCollector over socket ``FD``.

Started by :class:`trustrl.samplers.pools.ProcessPool`. It imports no torch,
ignores Ctrl-C (the learner, in the same process group, handles it and closes
the workers), and exits when the learner's end of the socket closes -- also
when the learner is killed.
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection

from trustrl.fragments import serve


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(Connection(int(sys.argv[1])))


if __name__ == "__main__":
    main()
