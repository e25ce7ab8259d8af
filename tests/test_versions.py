"""The versions a run ran with: recorded in its checkpoints, and a note when it is evaluated or resumed under others."""

import json
import shutil

import pytest
import torch
from tiny_runs import tiny_run

from trustrl import checkpoint, versions
from trustrl.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


def _copy_with(run, tmp_path, edit):
    """A copy of ``run`` whose checkpoint records ``edit`` changed (the weights, and their hash, untouched)."""
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    for tag in ("last", "best"):
        path = copy / "checkpoints" / f"{tag}.json"
        record = json.loads(path.read_text())
        edit(record)
        path.write_text(json.dumps(record))
    return copy


def _notes(caplog):
    return [r.getMessage() for r in caplog.records if "was trained with" in r.getMessage()]


def test_every_checkpoint_records_the_versions_that_move_numbers(run):
    record = json.loads((run / "checkpoints" / "last.json").read_text())["versions"]
    assert record == versions.running()
    assert {"trustrl", "python", "torch", "gymnasium", "numpy", "mujoco"} <= set(record)
    assert record["torch"] == torch.__version__
    assert checkpoint.load(run, "best").versions == record


def test_eval_names_each_library_that_differs_in_one_note(run, tmp_path, caplog):
    def older(record):
        record["versions"].update(mujoco="4.0.0", torch="2.12.0+cpu")
    copy = _copy_with(run, tmp_path, older)
    with caplog.at_level("WARNING", logger="trustrl"):
        assert main(["eval", str(copy), "--episodes", "1"]) == 0
    notes = _notes(caplog)
    mujoco, torch_now = versions.running()["mujoco"], versions.running()["torch"]
    assert notes == [f"note: the run {copy} was trained with torch 2.12.0+cpu (running {torch_now}), mujoco 4.0.0 "
                     f"(running {mujoco}); its numbers may differ here"]


def test_no_note_when_the_versions_match(run, caplog):
    with caplog.at_level("WARNING", logger="trustrl"):
        assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert _notes(caplog) == []


def test_resume_notes_the_libraries_that_differ(run, tmp_path, caplog):
    def older(record):
        record["versions"]["numpy"] = "1.26.4"
    copy = _copy_with(run, tmp_path, older)
    with caplog.at_level("WARNING", logger="trustrl"):
        assert main(["train", "--resume", str(copy), "--total-steps", "4096", "--quiet"]) == 0
    assert _notes(caplog) == [f"note: the run {copy} was trained with numpy 1.26.4 (running "
                              f"{versions.running()['numpy']}); its numbers may differ here"]
    assert json.loads((copy / "checkpoints" / "last.json").read_text())["versions"] == versions.running()


@pytest.mark.parametrize("old", [
    None,  # no record at all
    {"trustrl": "0.1.0", "torch": torch.__version__, "python": versions.running()["python"]},  # fewer libraries
    ["torch", "1.0"],  # not a mapping
    {"torch": "1.0\n\x1b[2J", "numpy": 7},  # not versions: neither shown nor compared
])
def test_a_run_written_without_the_full_record_evaluates_and_resumes_without_a_note(run, tmp_path, caplog, old):
    def drop(record):
        if old is None:
            del record["versions"]
        else:
            record["versions"] = old
    copy = _copy_with(run, tmp_path, drop)
    with caplog.at_level("WARNING", logger="trustrl"):
        assert main(["eval", str(copy), "--episodes", "1"]) == 0
        assert main(["train", "--resume", str(copy), "--total-steps", "4096", "--quiet"]) == 0
    assert _notes(caplog) == []


def test_a_library_no_longer_installed_runs_as_none():
    now = {"trustrl": "0.1.0", "torch": "2.13.0+cpu", "python": "3.11.7"}
    record = {"trustrl": "0.1.0", "torch": "2.13.0+cpu", "mujoco": "4.0.1", "python": "3.11.7", "other": "1"}
    assert versions.differences(record, now) == [("mujoco", "4.0.1", "none")]
