"""The README, the guide in docs/ and benchmarks/README.md stay true to the code: the site builds
strictly, relative links lead to files, Python examples compile and `trustrl ...` command lines parse."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from trustrl.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINKED = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")

# Placeholders in command lines, as a reader would fill them in.
PLACEHOLDERS = {"RUN": "runs/w0", "N": "100000", "PRESET": "cartpole-trpo", "ID": "cartpole/x-v0",
                "CONFIG": "cartpole-trpo", "DIR": "tune/x", "KEY=SPEC": "algo.max_kl=log:0.005:0.05",
                "NAME": "cartpole-trpo", "SECONDS": "30", "PATH": "/tmp/x.xml"}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _blocks(path: Path, kinds: set[str]) -> list[str]:
    return [body for kind, body in FENCE.findall(path.read_text()) if kind in kinds]


def _indented_blocks(path: Path) -> list[str]:
    """Indented code blocks (four spaces, after a blank line), the form the guide uses for shell lines."""
    blocks, current, prev_blank, in_fence = [], [], True, False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence:
            continue
        if line.startswith("    ") and (current or prev_blank):
            current.append(line[4:])
        elif current and not line.strip():
            current.append("")
        else:
            if current:
                blocks.append("\n".join(current))
            current = []
        prev_blank = not line.strip()
    if current:
        blocks.append("\n".join(current))
    return blocks


def _command_lines(text: str) -> list[str]:
    """`trustrl ...` lines of a shell block, continuations joined, comments and env assignments dropped."""
    out, joined = [], ""
    for raw in text.splitlines():
        line = joined + raw.strip()
        if line.endswith("\\"):
            joined = line[:-1] + " "
            continue
        joined = ""
        line = line.split(" # ", 1)[0].split("  #", 1)[0].strip()
        words = line.split()
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # RAY_ADDRESS=auto trustrl ...
            words = words[1:]
        if words[:1] == ["trustrl"] or words[:3] == ["python", "-m", "trustrl"]:
            out.append(" ".join(words))
    return out


def _fill(line: str) -> str:
    line = re.sub(r"\[(--[^\]]*)\]", r"\1", line)  # [--total-steps N]: an optional flag, written out
    line = re.sub(r"<[^>\s]+>", "x", line)  # <name>: any word
    for word, value in PLACEHOLDERS.items():
        line = re.sub(rf"(?<![\w.=-]){re.escape(word)}(?![\w-])", value, line)
    return line


def _shell_commands() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "README.md", *DOCS]:
        blocks = _blocks(path, {"bash", "sh", "console", "shell"}) + _indented_blocks(path)
        found += [(_name(path), line) for block in blocks for line in _command_lines(block)]
    return found


def test_mkdocs_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                             "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_relative_links_lead_to_files():
    broken = []
    for path in LINKED + DOCS:
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (path.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{_name(path)}: {target}")
    assert not broken, broken


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=_name)
def test_python_examples_compile(path):
    for i, code in enumerate(_blocks(path, {"python", "py"})):
        compile(code, f"{_name(path)} (python block {i + 1})", "exec")


def test_the_docs_show_commands_at_all():
    commands = _shell_commands()
    assert len(commands) > 40, commands  # the extraction itself still finds the guide's command lines
    assert any("--resume" in line for _, line in commands)


def test_every_trustrl_command_line_parses(capsys):
    parser, failed = build_parser(), []
    for where, line in _shell_commands():
        words = shlex.split(_fill(line))
        words = words[3:] if words[0] == "python" else words[1:]
        if words == ["--version"]:
            continue  # argparse's version action exits 0 by design
        try:
            parser.parse_args(words)
        except SystemExit:
            failed.append(f"{where}: {line}: {capsys.readouterr().err.strip()}")
    assert not failed, "\n".join(failed)
