"""What the tests of hostile run directories (symlinks, edited records, racing readers) share."""

from pathlib import Path

from trustrl.cli import main


def one_error_line(capsys) -> str:
    """The one ``error:`` line the command printed (and nothing on stdout)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and not captured.out, captured
    return lines[0]


def files_of(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or ``path`` itself) with its bytes, the lock aside (it holds the last PID)."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != ".trustrl.lock"}


def finished_run(root: Path, steps: int) -> Path:
    """A cartpole-trpo run of ``steps`` steps (``last`` and ``best`` written), to copy and tamper with."""
    run = root / "run"
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), "--total-steps", str(steps), "--quiet"]) == 0
    return run
