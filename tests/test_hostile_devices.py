"""A run trained with ``run.device = "cuda"`` saves its weights on the CPU: on a machine without CUDA it loads,
evaluates, films, collects and starts new runs on the CPU, with a one-line note; ``--resume`` keeps refusing
unless ``--set run.device=cpu`` says to go on there (a note says the numbers then differ from the GPU's)."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import tiny_run

import trustrl
from trustrl.cli import main


@pytest.fixture(autouse=True)
def no_cuda(monkeypatch):
    """This machine has no CUDA device (whatever the machine the tests run on)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture
def gpu_run(cpu_run, tmp_path):
    """The run as a GPU machine would have written it: the same files, ``run.device = "cuda"`` in its records."""
    run = tmp_path / "gpu"
    shutil.copytree(cpu_run, run)
    for record_path in (run / "checkpoints").glob("*.json"):
        record = json.loads(record_path.read_text())
        record["config"]["run"]["device"] = "cuda"
        record_path.write_text(json.dumps(record))
    toml = run / "config.toml"
    toml.write_text(re.sub(r'(?m)^device = "cpu"$', 'device = "cuda"', toml.read_text()))
    assert 'device = "cuda"' in toml.read_text()
    return run


NOTE = "run.device 'cuda'"


def test_load_falls_back_to_the_cpu_with_a_note_and_acts_as_on_the_cpu(gpu_run, cpu_run, caplog):
    with caplog.at_level("WARNING", logger="trustrl"):
        agent = trustrl.load(gpu_run)
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and NOTE in notes[0] and "cpu" in notes[0], notes
    assert agent.config.run.device == "cpu"
    assert next(agent.policy.parameters()).device.type == "cpu"
    reference = trustrl.load(cpu_run)
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    assert np.array_equal(agent.act_batch(obs), reference.act_batch(obs))


@pytest.mark.parametrize("command", [
    ["eval", "{run}", "--episodes", "2", "--json"],
    ["collect", "{run}", "--episodes", "2", "--dataset", "cartpole/from-gpu-v0"],
    ["train", "cartpole-trpo", "--init-from", "{run}", "--total-steps", "256", "--set", "run.n_steps=256",
     "--set", "run.eval_every=0", "--run-dir", "{out}/new", "--quiet"],
])
def test_a_gpu_run_is_used_on_the_cpu(command, gpu_run, cpu_run, tmp_path, capsys, caplog):
    fill = lambda args, run: [a.format(run=run, out=tmp_path / Path(run).name) for a in args]  # noqa: E731
    with caplog.at_level("WARNING", logger="trustrl"):
        assert main(fill(command, gpu_run)) == 0
    gpu_out, gpu_err = capsys.readouterr()
    assert "Traceback" not in gpu_err
    if command[0] != "train":  # a new run from the GPU run's policy reads its weights, never its device
        assert [r.getMessage() for r in caplog.records if NOTE in r.getMessage()] != []
    if command[0] == "eval":
        assert len([r for r in caplog.records if NOTE in r.getMessage()]) == 1
        assert main(fill(command, cpu_run)) == 0
        gpu, cpu = json.loads(gpu_out), json.loads(capsys.readouterr().out)
        assert {**gpu, "checkpoint": None} == {**cpu, "checkpoint": None}  # the same episodes, the same returns
    if command[0] == "collect":
        shutil.rmtree(Path(os.environ["MINARI_DATASETS_PATH"]) / "cartpole" / "from-gpu-v0")


def test_a_gpu_run_is_filmed_on_the_cpu(gpu_run, tmp_path, caplog):
    pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "episode.mp4"
    with caplog.at_level("WARNING", logger="trustrl"):
        assert main(["video", str(gpu_run), "--out", str(out), "--episodes", "1"]) == 0
    assert out.stat().st_size > 0 and any(NOTE in r.getMessage() for r in caplog.records)


def test_resume_of_a_gpu_run_keeps_its_clear_error_and_writes_nothing(gpu_run, capsys):
    before = {p.relative_to(gpu_run): p.read_bytes() for p in gpu_run.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(gpu_run), "--total-steps", "4096", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "no CUDA device" in err and "--set run.device=cpu" in err
    after = {p.relative_to(gpu_run): p.read_bytes() for p in gpu_run.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k.name != ".trustrl.lock"} == {
        k: v for k, v in before.items() if k.name != ".trustrl.lock"}


def test_resume_with_run_device_cpu_continues_on_the_cpu_with_a_note(gpu_run, cpu_run, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="trustrl"):
        assert main(["train", "--resume", str(gpu_run), "--total-steps", "4096", "--set", "run.device=cpu",
                     "--quiet"]) == 0
    notes = [r.getMessage() for r in caplog.records]
    assert any("run.device 'cuda' continues on 'cpu'" in note and "not bit for bit" in note for note in notes), notes
    assert json.loads((gpu_run / "checkpoints" / "last.json").read_text())["step"] >= 4096
    reference = tmp_path / "reference"  # the run trained on the CPU, resumed there
    shutil.copytree(cpu_run, reference)
    assert main(["train", "--resume", str(reference), "--total-steps", "4096", "--quiet"]) == 0
    assert (gpu_run / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()


def test_resume_may_change_no_other_setting_with_the_device(gpu_run, capsys):
    assert main(["train", "--resume", str(gpu_run), "--set", "run.device=cpu", "--set", "algo.max_kl=0.5"]) == 2
    assert "algo.max_kl" in capsys.readouterr().err
