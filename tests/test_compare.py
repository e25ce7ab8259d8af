"""The comparison's aggregation, checked numerically (never through pixels)."""

import math

import numpy as np
import pytest

from trustrl.compare import RunRecord, summarize
from trustrl.errors import TrustrlError
from trustrl.plots import aggregate_series


def _band(*curves):
    (band,) = aggregate_series([("algo", x, y) for x, y in curves])
    return band.steps, band.mean, band.std


def test_curves_are_interpolated_onto_the_shared_step_range():
    a = (np.array([0.0, 100.0, 200.0, 300.0]), np.array([0.0, 10.0, 20.0, 30.0]))  # y = x / 10
    b = (np.array([50.0, 150.0, 250.0]), np.array([10.0, 30.0, 50.0]))  # y = x / 5
    grid, mean, std = _band(a, b)
    np.testing.assert_allclose(grid, [50, 100, 150, 200, 250])  # latest start .. earliest end
    ya, yb = grid / 10, grid / 5
    np.testing.assert_allclose(mean, (ya + yb) / 2)
    np.testing.assert_allclose(std, np.abs(ya - yb) / 2)  # population std of two values


def test_curves_drop_nan_points_before_the_first_episode():
    a = (np.array([0.0, 10.0, 20.0, 30.0]), np.array([np.nan, np.nan, 1.0, 3.0]))
    b = (np.array([0.0, 10.0, 20.0, 30.0]), np.array([np.nan, 0.0, 2.0, 4.0]))
    grid, mean, std = _band(a, b)
    np.testing.assert_allclose(grid, [20, 30])
    np.testing.assert_allclose(mean, [1.5, 3.5])
    np.testing.assert_allclose(std, [0.5, 0.5])


def test_one_run_has_zero_std_and_disjoint_runs_are_refused():
    x, y = np.arange(5.0), np.arange(5.0) ** 2
    grid, mean, std = _band((x, y))
    np.testing.assert_allclose(mean, y)
    assert np.all(std == 0)
    with pytest.raises(TrustrlError, match="cover no common range"):
        _band((np.array([0.0, 1.0]), np.ones(2)), (np.array([2.0, 3.0]), np.ones(2)))


def test_summarize_gives_mean_and_std_over_seeds_per_algorithm():
    def record(algo, seed, ev, final, seconds):
        return RunRecord(algo, seed, np.array([1.0, 2.0]), np.array([np.nan, final]), ev, 1000, seconds)

    rows = summarize([
        record("ppo", 0, 500.0, 480.0, 10.0),
        record("trpo", 0, 400.0, 300.0, 20.0),
        record("ppo", 1, 300.0, 460.0, 14.0),
    ])  # fmt: skip
    assert [r.algo for r in rows] == ["ppo", "trpo"]
    ppo, trpo = rows
    assert (ppo.seeds, ppo.steps, ppo.eval_returns) == (2, 1000, [500.0, 300.0])
    assert ppo.eval_return_mean == 400.0 and ppo.eval_return_std == 100.0
    assert ppo.train_return_final == 470.0 and ppo.wall_time_s == 12.0
    assert trpo.eval_return_std == 0.0 and trpo.seeds == 1
    assert not math.isnan(trpo.train_return_final)


def test_compare_takes_a_sampling_scheme_as_an_algorithm_label():
    from trustrl.compare import _preset_for, _split_preset
    from trustrl.errors import ConfigError

    assert _preset_for("cartpole", "trpo-vine") == "cartpole-trpo-vine"
    assert _split_preset("cartpole-trpo-vine") == ("cartpole", "trpo-vine")
    assert _split_preset("walker2d-ppo") == ("walker2d", "ppo")
    assert _split_preset("walker2d-trpo-notebook") == ("walker2d", "trpo-notebook")
    assert _preset_for("walker2d", "trpo-notebook") == "walker2d-trpo-notebook"
    with pytest.raises(ConfigError, match="no preset walker2d-trpo-vine; walker2d has presets for ppo, trpo, "
                                          "trpo-notebook"):
        _preset_for("walker2d", "trpo-vine")
    with pytest.raises(ConfigError, match="unknown algorithm 'sac-vine'"):
        _preset_for("cartpole", "sac-vine")
