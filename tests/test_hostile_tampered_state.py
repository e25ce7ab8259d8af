"""Tampered state is one `error:` line and exit 2, with nothing of the run changed.

Each row edits what a run (or a study, a plot request, a config file) holds the way someone might, by hand
or by attack, and runs the command that reads it.
"""

import json
import shutil
from pathlib import Path

import pytest

from trustrl.cli import main
from trustrl.run.state import LoopState

SHORT = ["--total-steps", "2048", "--set", "run.n_steps=256", "--quiet"]
LONG_NAME = "r" * 300  # ext4, tmpfs, xfs: NAME_MAX is 255 bytes
DEEP = "a = " + "[" * 5000 + "]" * 5000 + "\n"


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("good") / "run"
    assert main(["train", "cartpole-trpo", "--run-dir", str(run), *SHORT]) == 0
    return run


def files_of(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name not in (".trustrl.lock", "command.txt")}


def edit_record(run: Path, change) -> None:
    path = run / "checkpoints" / "last.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def set_loop(key, value):
    return lambda run: edit_record(run, lambda r: r["state"]["loop"].__setitem__(key, value))


def env_snapshots(record: dict) -> list[dict]:
    found, stack = [], [record["state"]["sampler"]]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("kind") == "classic_control":
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    assert found
    return found


def snapshot_attribute(name, value):
    def change(record):
        for snap in env_snapshots(record):
            snap["attributes"][name] = value
    return lambda run: edit_record(run, change)


def rng_integer(value):
    def change(record):
        for snap in env_snapshots(record):
            snap["rng"]["state"]["state"]["state"] = value
    return lambda run: edit_record(run, change)


def metrics_as_folder(run):
    (run / "metrics.csv").unlink()
    (run / "metrics.csv").mkdir()


def metrics_without_step(run):
    text = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(text.replace("step,", "stop,", 1))


def config_only(text):
    def change(run):
        shutil.rmtree(run / "checkpoints")
        (run / "config.toml").write_text(text)
    return change


RESUME = ["train", "--resume", "{run}", "--total-steps", "4096", "--quiet"]
TAMPERED_RUNS = [
    ("update = Infinity", set_loop("update", float("inf")), "loop.update must be an integer from 0 to 1e+15, got inf"),
    ("update = -3", set_loop("update", -3), "loop.update must be an integer from 0 to 1e+15, got -3"),
    ("best = a string", set_loop("best", "high"), "loop.best must be a finite number, got 'high'"),
    ("recent_returns a string", set_loop("recent_returns", "abc"), "loop.recent_returns must be a list, got str"),
    ("eval_seeds a string", set_loop("eval_seeds", "abc"), "loop.eval_seeds must be a list, got str"),
    ("eval_seeds of strings", set_loop("eval_seeds", ["1"]), "loop.eval_seeds[0] must be an integer"),
    ("loop a list", lambda run: edit_record(run, lambda r: r["state"].__setitem__("loop", [1])),
     "the loop state must be a table, got list"),
    ("env RNG integer 2**200", rng_integer(2**200), "snapshot does not fit this env"),
    ("snapshot attribute named step", snapshot_attribute("step", 3), "attributes ['step'] cannot be restored"),
    ("snapshot attribute named reset", snapshot_attribute("reset", None), "attributes ['reset'] cannot be restored"),
    ("total_steps = Infinity", lambda run: edit_record(run, lambda r: r["config"]["run"].__setitem__(
        "total_steps", float("inf"))), "run.total_steps must be an integer, got inf"),
    ("metrics.csv a folder", metrics_as_folder, "metrics.csv to continue it (it is a folder, not a file)"),
    ("metrics.csv without a step column", metrics_without_step, "metrics.csv has no step column"),
    ("offline = 5 in config.toml", config_only('name = "x"\noffline = 5\n[env]\nid = "CartPole-v1"\n'),
     "[offline] must be a table"),
    ("config.toml nested 5000 deep", config_only(DEEP), "cannot be read as a config (nested too deeply)"),
]  # fmt: skip


@pytest.mark.parametrize("name, tamper, message", TAMPERED_RUNS, ids=[row[0] for row in TAMPERED_RUNS])
def test_resuming_a_tampered_run_is_one_error_line_and_changes_none_of_it(good_run, tmp_path, capsys, name, tamper,
                                                                          message):
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    tamper(run)
    before = files_of(run)
    assert main([arg.format(run=run) for arg in RESUME]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    after = files_of(run)
    after.pop("config.toml", None), before.pop("config.toml", None)  # a resume rewrites it before the metrics
    assert after == before


def _plot(run, tmp_path, *extra):
    return ["plot", str(run), "--out", str(tmp_path / "p.png"), *extra]


def _tune(tmp_path, out):
    return ["tune", "cartpole-trpo", "--param", "algo.max_kl=log:0.005:0.05", "--trials", "1", "--out", str(out),
            "--total-steps", "256"]


def _corrupt_db(tmp_path):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.db").write_bytes(b"this is not sqlite" * 100)
    return _tune(tmp_path, tmp_path / "study")


def _folder_db(tmp_path):
    (tmp_path / "study" / "study.db").mkdir(parents=True)
    return _tune(tmp_path, tmp_path / "study")


def _deep_file(tmp_path):
    (tmp_path / "deep.toml").write_text(DEEP)
    return str(tmp_path / "deep.toml")


def _plot_no_step(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    metrics_without_step(tmp_path / "run")
    return _plot(tmp_path / "run", tmp_path)


OTHER_COMMANDS = [
    ("plot: metrics.csv without a step column", _plot_no_step, "metrics.csv has no step column"),
    ("plot: mathtext in --title", lambda run, tmp: _plot(run, tmp, "--title", r"$\foo$"),
     r"--title '$\\foo$' is not valid matplotlib mathtext"),
    ("plot: mathtext in --label", lambda run, tmp: _plot(run, tmp, "--label", r"a $\frac{1}$"),
     "is not valid matplotlib mathtext"),
    ("plot: --out name too long", lambda run, tmp: ["plot", str(run), "--out", str(tmp / f"{LONG_NAME}.png")],
     "is 304 bytes, longer than the file system allows"),
    ("train: --run-dir name too long", lambda run, tmp: ["train", "cartpole-trpo", "--run-dir", str(tmp / LONG_NAME)],
     "is 300 bytes, longer than the file system allows"),
    ("eval: run name too long", lambda run, tmp: ["eval", str(tmp / LONG_NAME)], "longer than the file system allows"),
    ("compare: --out name too long", lambda run, tmp: ["compare", "cartpole", "--algos", "trpo", "--seeds", "1",
                                                       "--out", str(tmp / LONG_NAME)], "longer than the file system"),
    ("tune: --out name too long", lambda run, tmp: _tune(tmp, tmp / LONG_NAME), "longer than the file system allows"),
    ("tune: corrupt database", lambda run, tmp: _corrupt_db(tmp), "study.db cannot be used (file is not a database)"),
    ("tune: database a folder", lambda run, tmp: _folder_db(tmp), "study.db is not a file"),
    ("config: TOML nested 5000 deep", lambda run, tmp: ["config", _deep_file(tmp)], "nested too deeply to be a config"),
    ("train: TOML nested 5000 deep", lambda run, tmp: ["train", _deep_file(tmp), "--run-dir", str(tmp / "r")],
     "nested too deeply to be a config"),
    ("train: --set value nested 5000 deep", lambda run, tmp: ["train", "cartpole-trpo", "--run-dir", str(tmp / "r"),
                                                             "--set", "policy.hidden=" + "[" * 5000], "nested too deeply"),
    ("train: offline = 5 in a config file", lambda run, tmp: ["train", _offline_5(tmp), "--run-dir", str(tmp / "r")],
     "[offline] must be a table"),
]  # fmt: skip


def _offline_5(tmp_path):
    (tmp_path / "off.toml").write_text('name = "x"\noffline = 5\n[env]\nid = "CartPole-v1"\n')
    return str(tmp_path / "off.toml")


@pytest.mark.parametrize("name, argv, message", OTHER_COMMANDS, ids=[row[0] for row in OTHER_COMMANDS])
def test_tampered_input_to_other_commands_is_one_error_line(good_run, tmp_path, capsys, name, argv, message):
    before = files_of(good_run)
    assert main(argv(good_run, tmp_path)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert files_of(good_run) == before
    assert not (tmp_path / "p.png").exists()


def test_plot_still_draws_mathtext_that_parses_and_a_lone_dollar(good_run, tmp_path, capsys):
    assert main(_plot(good_run, tmp_path, "--title", r"$\alpha$ costs $5", "--label", r"$\sqrt{2}$")) == 0
    assert (tmp_path / "p.png").stat().st_size > 0


def test_the_loop_state_reads_back_what_it_wrote():
    state = LoopState(update=7, best=12.5, recent_returns=[1.0, 2.5], recent_lengths=[3, 4], filmed=1,
                      eval_initial=float("nan"), eval_last=9.0, skipped=2, eval_seeds=[5, 6])
    back = LoopState.from_json(json.loads(json.dumps(state.to_json())))
    assert back.to_json() == state.to_json() and back.best == 12.5 and back.eval_seeds == [5, 6]
    assert LoopState.from_json({"best": None}).best == float("-inf")
