"""A checkpoint record edited by hand is checked against the state it describes before anything is deleted.

Each row edits one record of a finished run (4096 steps, ``last`` and ``best`` at 4096) and resumes it:
either one ``error:`` line with every file of the run as it was, or a resume that keeps every weights file
some record's own tag and step still describe.
"""

import json
import shutil
from pathlib import Path

import pytest
from hostile_run_files import files_of, finished_run, one_error_line

from trustrl import checkpoint
from trustrl.cli import main

LAST, BEST = "last-000004096.safetensors", "best-000004096.safetensors"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    run = finished_run(tmp_path_factory.mktemp("base"), 4096)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == [BEST, "best.json", LAST, "last.json"]  # the premise of every row
    return run


def _edit(run: Path, tag: str, change) -> None:
    path = run / "checkpoints" / f"{tag}.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def _set(*keys, value):
    def change(record):
        node = record
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return change


def _name_weights_of(tag):
    def change(record):
        record["weights"] = BEST if tag == "best" else LAST
    return change


REFUSED = [
    ("last", _name_weights_of("best"), "weights file best-000004096.safetensors holds"),
    ("last", _set("step", value=1024), "its training state is at step 4096, its record says 1024"),
    ("last", _set("state", "sampler", "total_steps", value=-5000), "training state is at step -5000"),
    ("last", _set("state", "sampler", "total_steps", value=10**20), "its record says 4096"),
    ("last", _set("state", "sampler", "total_steps", value=8192), "training state is at step 8192"),
    ("last", _set("state", "sampler", "total_steps", value=4095), "training state is at step 4095"),
    ("last", _set("config", "run", "total_steps", value=-5000), "run.total_steps"),
    ("last", _set("weights_bytes", value="91452"), "weights_bytes must be an integer"),
    ("last", _set("weights_bytes", value=12), "its record says 12"),
]  # fmt: skip


@pytest.mark.parametrize("tag, change, message", REFUSED, ids=[m[:40] for _, _, m in REFUSED])
def test_an_edited_record_is_refused_at_resume_and_nothing_is_deleted(base_run, tmp_path, capsys, tag, change,
                                                                      message):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    _edit(run, tag, change)
    before = files_of(run)
    assert main(["train", "--resume", str(run), "--total-steps", "5120", "--quiet"]) == 2
    assert message in one_error_line(capsys)
    assert files_of(run) == before  # metrics rows, weights and records all as they were


def test_a_best_record_naming_the_last_weights_costs_neither(base_run, tmp_path, capsys):
    """The genuine ``best`` weights are not taken for leftovers, and no later ``best`` deletes ``last``'s."""
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    _edit(run, "best", _name_weights_of("last"))
    genuine_best = (run / "checkpoints" / BEST).read_bytes()
    assert main(["train", "--resume", str(run), "--total-steps", "6144", "--quiet"]) == 0
    assert (run / "checkpoints" / BEST).read_bytes() == genuine_best
    assert checkpoint.load(run, "last").step == 6144
    assert [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]] == \
        [0, 1024, 2048, 3072, 4096, 5120, 6144]


def test_the_writer_deletes_only_the_weights_of_its_own_tag(tmp_path):
    """``save`` removes the weights the previous record named only if they are that tag's."""
    from trustrl.config import CriticConfig, PolicyConfig
    from trustrl.nets import GaussianPolicy, ValueNet

    policy, critic = GaussianPolicy(3, 2, PolicyConfig(hidden=(8,))), ValueNet(3, CriticConfig(hidden=(8,)))

    def save(tag, step):
        return checkpoint.save(tmp_path, tag, policy, critic, config={}, spaces={}, obs_norm={}, reward_norm={},
                               step=step, update=1)

    save("best", 100)
    record = json.loads((tmp_path / "best.json").read_text())
    save("last", 100)
    path = tmp_path / "last.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "weights": record["weights"]}))
    save("last", 200)
    assert (tmp_path / "best-000000100.safetensors").is_file() and checkpoint.load(tmp_path, "best").step == 100
    assert json.loads(path.read_text())["weights_bytes"] == (tmp_path / "last-000000200.safetensors").stat().st_size
