"""requirements.lock: one hashed pin per distribution, covering everything the default install needs, installed as locked.

The closure is walked through the metadata of the installed distributions (no network): every requirement of
``trustrl[test]`` and of its build backend, and theirs in turn, markers evaluated for this interpreter.
"""

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([a-z0-9-]+)==(\S+) --hash=sha256:[0-9a-f]{64}$")


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = PIN.match(line)
        assert match, f"{name}: not a hashed pin of a normalised name: {line!r}"
        assert match[1] not in pins, f"{name}: {match[1]} pinned twice"
        pins[match[1]] = match[2]
    return pins


LOCK = _pins("requirements.lock")


def _closure() -> set[str]:
    """The names of every distribution ``trustrl[test]`` and its build backend need here, transitively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    todo = [Requirement(r) for r in (*project["project"]["dependencies"],
                                     *project["project"]["optional-dependencies"]["test"],
                                     *project["build-system"]["requires"])]
    seen: dict[str, set[str]] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen and set(req.extras) <= seen[name]:
            continue
        seen.setdefault(name, set()).update(req.extras)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # reported below as missing from the installed set, if the lock lacks it
        for line in requires:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ("", *seen[name])):
                todo.append(sub)
    return set(seen)


def test_the_lock_pins_torch_to_the_cpu_build_and_no_cuda_library():
    assert LOCK["torch"] == "2.13.0+cpu"
    assert not [name for name in LOCK if name.startswith("nvidia-")]


def test_every_distribution_the_default_install_needs_is_pinned_and_nothing_else():
    needed = _closure()
    assert sorted(needed - set(LOCK)) == []
    assert sorted(set(LOCK) - needed) == ["pip"], "the lock pins what nothing needs any more: run `make lock`"


def test_the_installed_distributions_are_the_locked_versions():
    wrong = {name: (version, metadata.version(name)) for name, version in LOCK.items()
             if _installed(name) and metadata.version(name) != version}
    missing = [name for name in LOCK if not _installed(name)]
    assert (wrong, missing) == ({}, []), "this venv is not the lock's: run `make install`"


def test_the_bench_lock_adds_only_what_the_default_lock_lacks():
    bench = _pins("requirements-bench.lock")
    assert {"stable-baselines3", "sb3-contrib"} <= set(bench) and not set(bench) & set(LOCK)


def test_the_lock_refresh_refuses_a_cuda_torch(capsys):
    spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "tools" / "lock.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.check_cpu_torch({"torch": ("2.13.0+cpu", "0" * 64), "numpy": ("2.4.6", "1" * 64)})
    with pytest.raises(SystemExit) as stop:
        tool.check_cpu_torch({"torch": ("2.13.0", "0" * 64), "nvidia-cublas": ("13.0", "1" * 64)})
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("error: pip resolved torch 2.13.0 with nvidia-cublas")
    assert len(err.splitlines()) == 1


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True
