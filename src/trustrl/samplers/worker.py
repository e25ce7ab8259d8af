"""A sampling worker process: ``python -m trustrl.samplers.worker FD`` serves a FragmentCollector over socket ``FD``.

Started by :class:`trustrl.samplers.pools.ProcessPool`. It imports no torch,
ignores Ctrl-C (the learner, in the same process group, handles it and closes
the workers), and exits when the learner's end of the socket closes -- also
when the learner is killed.
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)  # before the imports, which take most of a worker's start

import sys  # noqa: E402
from multiprocessing.connection import Connection  # noqa: E402

from trustrl.samplers.fragments import serve  # noqa: E402


def main() -> None:
    serve(Connection(int(sys.argv[1])))


if __name__ == "__main__":
    main()
