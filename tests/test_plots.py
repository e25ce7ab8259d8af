"""Plots: the aggregation matches the CSVs numerically; the files exist; bad input is one clear error."""

import csv

import numpy as np
import pytest

from trustrl.cli import main
from trustrl.metrics import MetricsLogger
from trustrl.plots import Series, aggregate_series, plot_runs, read_series


def _fake_run(run_dir, name, steps, returns):
    """A run directory as a training run writes it: config.toml with the name, metrics.csv via MetricsLogger."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(f'name = "{name}"\n')
    logger = MetricsLogger(run_dir, steps[-1], progress=False, tensorboard=False)
    for step, ret in zip(steps, returns):
        logger.log(step, {"update": step // 100, "episode_return_mean": ret, "kl": 0.01}, {"steps_per_s": 1.0})
    logger.close()
    return run_dir


def _csv_column(run_dir, column):
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([float(r["step"]) for r in rows]), np.array([float(r[column]) for r in rows])


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    steps = [100, 200, 300, 400]
    a = [_fake_run(tmp_path / f"a{i}", "cartpole-trpo", steps, rng.normal(100, 20, 4).tolist()) for i in range(3)]
    b = [_fake_run(tmp_path / f"b{i}", "cartpole-ppo", [150, 250, 350, 450], rng.normal(50, 5, 4).tolist())
         for i in range(2)]
    return a, b


def test_runs_on_the_same_steps_average_exactly_to_the_csv_values(runs):
    a, b = runs
    bands = aggregate_series([read_series(r) for r in a + b])
    assert [(band.label, band.n_runs) for band in bands] == [("cartpole-trpo", 3), ("cartpole-ppo", 2)]
    values = np.stack([_csv_column(r, "episode_return_mean")[1] for r in a])
    np.testing.assert_array_equal(bands[0].steps, [100, 200, 300, 400])
    np.testing.assert_allclose(bands[0].mean, values.mean(0), rtol=1e-12)
    np.testing.assert_allclose(bands[0].std, values.std(0), rtol=1e-12)


def test_runs_on_different_steps_are_interpolated_on_their_common_range():
    bands = aggregate_series([
        ("x", [0, 10, 20, 30], [0.0, 10.0, 20.0, 30.0]),
        ("x", [5, 15, 25], [1.0, 1.0, 3.0]),
    ])
    (band,) = bands
    np.testing.assert_array_equal(band.steps, [5, 10, 15, 20, 25])  # union of steps inside [5, 25]
    first = np.array([5.0, 10.0, 15.0, 20.0, 25.0])
    second = np.array([1.0, 1.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(band.mean, (first + second) / 2)
    np.testing.assert_allclose(band.std, np.abs(first - second) / 2)


def test_missing_values_are_dropped_and_order_does_not_matter():
    (band,) = aggregate_series([Series("y", np.array([30, 10, 20]), np.array([3.0, 1.0, np.nan]))])
    np.testing.assert_array_equal(band.steps, [10, 30])
    np.testing.assert_array_equal(band.mean, [1.0, 3.0])
    assert band.n_runs == 1 and np.all(band.std == 0)


def test_plot_writes_png_and_svg_and_returns_what_it_drew(runs, tmp_path, capsys):
    a, b = runs
    png = tmp_path / "curves.png"
    assert main(["plot", *map(str, a + b), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "cartpole-trpo: 3 runs" in capsys.readouterr().out
    svg = tmp_path / "kl.svg"
    bands = plot_runs(a, svg, metric="kl", labels=["mine"])
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    assert bands[0].label == "mine" and np.allclose(bands[0].mean, 0.01)


def test_labels_per_run_regroup_the_bands(runs, tmp_path):
    a, b = runs
    bands = plot_runs([a[0], b[0]], tmp_path / "c.png", labels=["one", "one"])
    assert [(band.label, band.n_runs) for band in bands] == [("one", 2)]
    np.testing.assert_array_equal(bands[0].steps, [150, 200, 250, 300, 350, 400])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metric", "nosuch"], "has no column 'nosuch'; columns: update, episode_return_mean, kl"),
        (["--label", "a", "--label", "b", "--label", "c"], "one --label for all runs or one per run (2)"),
    ],
)
def test_plot_bad_input(runs, tmp_path, capsys, extra, message):
    a, _ = runs
    assert main(["plot", str(a[0]), str(a[1]), "--out", str(tmp_path / "p.png"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "p.png").exists()


def test_plot_of_a_missing_run_or_a_bad_format(runs, tmp_path, capsys):
    a, _ = runs
    assert main(["plot", str(tmp_path / "nope"), "--out", str(tmp_path / "p.png")]) == 2
    assert "no run at" in capsys.readouterr().err
    assert main(["plot", str(a[0]), "--out", str(tmp_path / "p.jpg")]) == 2
    assert "must end in .png or .svg" in capsys.readouterr().err


def test_curves_against_wall_clock_read_the_elapsed_seconds_and_lay_resumed_invocations_end_to_end(tmp_path):
    run = _fake_run(tmp_path / "r", "cartpole-trpo", [0, 100, 200, 300], [np.nan, 1.0, 2.0, 3.0])
    (run / "timing.csv").write_text("step,elapsed_s\n0,nan\n100,2.0\n200,5.0\n300,1.5\n")  # resumed after 200
    series = read_series(run, x="seconds")
    np.testing.assert_allclose(series.steps, [0.0, 2.0, 5.0, 6.5])
    np.testing.assert_allclose(series.values[1:], [1.0, 2.0, 3.0])
    assert main(["plot", str(run), "--x", "seconds", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
