"""A sampling worker process: ``python -P -m trustrl.samplers.worker FD PID`` serves a FragmentCollector over socket
``FD`` to the learner ``PID``.

Started by :class:`trustrl.samplers.pools.ProcessPool`. It imports no torch,
ignores Ctrl-C (the learner, in the same process group, handles it and closes
the workers), and exits when the learner's end of the socket closes, or --
whatever its env is doing -- when the learner dies (:mod:`trustrl.lifeline`).
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)  # before the imports, which take most of a worker's start

import sys  # noqa: E402

from trustrl.lifeline import die_with_parent  # noqa: E402

die_with_parent(int(sys.argv[2]))  # before the slow imports too: a learner killed meanwhile takes this along

from multiprocessing.connection import Connection  # noqa: E402

from trustrl.samplers.fragments import serve  # noqa: E402


def main() -> None:
    serve(Connection(int(sys.argv[1])))


if __name__ == "__main__":
    main()
