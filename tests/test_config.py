"""Presets load, overrides apply with type checks, and out-of-range values are refused."""

import pytest

from trustrl import config
from trustrl.errors import ConfigError


def test_every_preset_loads_and_validates():
    names = config.preset_names()
    assert {"walker2d-trpo", "cartpole-trpo", "pendulum-trpo"} <= set(names)
    for name in names:
        cfg = config.load(name)
        assert cfg.name == name


def test_walker2d_preset_has_the_reference_notebook_settings():
    cfg = config.load("walker2d-trpo")
    assert (cfg.env.id, cfg.env.n_envs, cfg.run.n_steps, cfg.run.total_steps) == ("Walker2d-v5", 2, 1024, 1_000_000)
    assert (cfg.algo.gamma, cfg.algo.gae_lambda, cfg.algo.max_kl, cfg.algo.damping) == (0.99, 0.97, 0.01, 0.1)
    assert (cfg.algo.cg_iters, cfg.algo.backtrack_shrink, cfg.algo.normalize_advantage) == (15, 0.8, True)
    assert (cfg.policy.hidden, cfg.policy.activation) == ((128, 128), "relu")
    assert (cfg.critic.epochs, cfg.critic.lr, cfg.critic.minibatch) == (15, 1e-3, 128)
    assert cfg.env.norm_obs and cfg.batch_size == 2048


def test_overrides_apply_and_convert_types():
    cfg = config.load("cartpole-trpo", ["algo.max_kl=0.02", "env.n_envs=3", "policy.hidden=[32, 16]", "env.norm_obs=false"])
    assert cfg.algo.max_kl == 0.02 and cfg.env.n_envs == 3
    assert cfg.policy.hidden == (32, 16) and cfg.env.norm_obs is False


def test_toml_round_trip(tmp_path):
    cfg = config.load("walker2d-trpo", ["run.seed=7"])
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert config.load(str(path)) == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("critic.lr=-0.001", "critic.lr must be > 0"),
        ("algo.max_kl=0", "algo.max_kl must be > 0"),
        ("algo.gamma=1.5", "algo.gamma must be in (0, 1]"),
        ("algo.gamma=0", "algo.gamma must be in (0, 1]"),
        ("algo.max_kll=0.1", "unknown key algo.max_kll; did you mean algo.max_kl?"),
        ("nosuch.key=1", "unknown section 'nosuch'"),
        ("env.n_envs=two", "env.n_envs must be an integer"),
        ("env.id=Walker2d-v99", "unknown environment id 'Walker2d-v99'"),
        ("maxkl=1", "--set key must be section.key"),
        ("algo.max_kl", "--set expects section.key=value"),
    ],
)
def test_bad_values_give_one_clear_error(override, message):
    with pytest.raises(ConfigError, match=None) as exc:
        config.load("cartpole-trpo", [override])
    assert message in str(exc.value)


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ConfigError, match="unknown preset 'walker-trpo'.*walker2d-trpo"):
        config.load("walker-trpo")


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        config.load("nope/missing.toml")
