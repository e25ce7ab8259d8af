"""Write requirements.lock: every distribution `make install` puts in the venv, at one version, with its hash.

Numbers move with the libraries under them (a MuJoCo patch release turned one Walker2d seed from 783 into
5448), so `make install` installs exactly these files, with ``pip install --require-hashes --no-deps``, and
nothing is resolved at install time. This script is the refresh (`make lock`): pip resolves the default
install afresh (``torch==2.13.0``, ``-e .[test]``, the build backend, pip itself) without installing it,
and its report gives each distribution's version and the SHA-256 of the very file it chose.

The hashes are those of the files pip picks on the machine that runs this (this project's: Linux x86_64,
CPython 3.11); a lock for another platform is made by running this there. ``requirements-bench.lock`` holds
what the ``bench`` extra adds, resolved against the main lock's versions.

    python tools/lock.py             # rewrite both lock files
    python tools/lock.py --digest    # the short digest a benchmark table names
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
BENCH_LOCK = ROOT / "requirements-bench.lock"
#: The torch build the project runs on; any other (a CUDA build) is a multi-GB download.
TORCH = "torch==2.13.0"
#: What `make install` installs besides the project's own requirements: the build backend of the editable
#: install (built without isolation, from the lock) and the installer itself.
TOOLS = ("setuptools>=77", "pip")
HEADER = """\
# {what}, pinned with the SHA-256 of the file pip installs on {platform}.
# Made by `make lock` (tools/lock.py); installed by `make {target}` with pip --require-hashes --no-deps.
# trustrl itself is installed editable from the checkout and is not listed.
"""


def digest(path: Path = LOCK) -> str:
    """The first 12 hex digits of the lock file's SHA-256: what a benchmark table names."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(requirements: list[str], constraints: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """{name: (version, sha256)} of every distribution pip would install for ``requirements`` in a fresh
    venv (resolved, nothing installed), trustrl's editable install left out."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--only-binary", ":all:", "--report", str(Path(tmp) / "report.json"), *requirements]
        if constraints:
            (Path(tmp) / "pins.txt").write_text("".join(f"{n}=={v}\n" for n, v in constraints.items()))
            command += ["-c", str(Path(tmp) / "pins.txt")]
        subprocess.run(command, cwd=ROOT, check=True)
        report = json.loads((Path(tmp) / "report.json").read_text())
    found = {}
    for item in report["install"]:
        info = item["download_info"]
        if "dir_info" in info:  # the editable trustrl
            continue
        found[_normal(item["metadata"]["name"])] = (item["metadata"]["version"], info["archive_info"]["hashes"]["sha256"])
    return found


def render(pins: dict[str, tuple[str, str]], what: str, target: str) -> str:
    lines = [f"{name}=={version} --hash=sha256:{sha}" for name, (version, sha) in sorted(pins.items())]
    here = f"{platform.system()} {platform.machine()}, CPython {sys.version_info.major}.{sys.version_info.minor}"
    return HEADER.format(what=what, target=target, platform=here) + "\n".join(lines) + "\n"


def check_cpu_torch(pins: dict[str, tuple[str, str]]) -> None:
    version = pins.get("torch", ("none", ""))[0]
    cuda = sorted(name for name in pins if name.startswith("nvidia-"))
    if not version.endswith("+cpu") or cuda:
        print(f"error: pip resolved torch {version}{' with ' + ', '.join(cuda[:3]) if cuda else ''}, not the CPU "
              "build: run `make lock` where the torch==2.13.0+cpu wheel is on pip's find-links", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digest", action="store_true", help="print the lock's short SHA-256 and exit")
    args = parser.parse_args()
    if args.digest:
        print(f"requirements.lock sha256:{digest()}")
        return
    pins = resolve([TORCH, "-e", ".[test]", *TOOLS])
    check_cpu_torch(pins)
    with_bench = resolve([TORCH, "-e", ".[test,bench]", *TOOLS], {n: v for n, (v, _) in pins.items()})
    bench = {name: pin for name, pin in with_bench.items() if name not in pins}
    LOCK.write_text(render(pins, "Every distribution of the default install (`-e .[test]`)", "install"))
    BENCH_LOCK.write_text(render(bench, "What the bench extra adds to requirements.lock", "bench"))
    print(f"wrote {LOCK.name} ({len(pins)} distributions, sha256:{digest()}) and {BENCH_LOCK.name} "
          f"({len(bench)})")


if __name__ == "__main__":
    main()
