"""Presets load, overrides apply with type checks, and out-of-range values are refused."""

import pytest

from trustrl import config
from trustrl.errors import ConfigError


def test_every_preset_loads_and_validates():
    names = config.preset_names()
    family = {f"{env}-{algo}" for env in ("cartpole", "pendulum") for algo in config.ALGO_CONFIGS}
    mujoco = {f"{env}-trpo" for env in ("walker2d", "hopper", "halfcheetah", "ant", "swimmer", "humanoid",
                                        "invertedpendulum", "inverteddoublependulum", "reacher", "pusher")}
    assert {"walker2d-trpo-notebook", "walker2d-ppo", "walker2d-trpo-wide", "hopper-trpo-wide", "halfcheetah-trpo-wide",
            "ant-trpo-wide", "humanoid-trpo-wide", "cartpole-trpo-vine", "pendulum-trpo-vine", *family,
            *mujoco} <= set(names)
    for name in names:
        cfg = config.load(name)
        assert cfg.name == name
        env, algo, *variant = name.split("-")
        assert cfg.algo.name == algo and isinstance(cfg.algo, config.ALGO_CONFIGS[algo])
        assert cfg.env.id.lower().startswith(env)
        assert cfg.run.sampling == ("vine" if variant == ["vine"] else "single-path")


def test_an_env_id_finds_its_plain_preset_when_it_has_variants():
    assert config.find_preset("Walker2d-v5", "trpo") == "walker2d-trpo"
    assert config.load("Walker2d-v5").name == "walker2d-trpo"


@pytest.mark.parametrize("env", ["walker2d", "hopper", "halfcheetah"])
def test_mujoco_preset_is_the_config_its_benchmark_measured(env):
    """benchmarks/README.md reports these presets' returns from this file's runs."""
    import dataclasses
    from pathlib import Path

    learner = "-fvp512-mb8" if env in ("walker2d", "hopper") else ""  # the cheaper learner, measured on these two
    measured = Path(__file__).parents[1] / "benchmarks" / "configs" / f"{env}-kl03-linear-std05{learner}.toml"
    preset = config.load(f"{env}-trpo")
    assert dataclasses.replace(config.load(str(measured)), name=preset.name) == preset
    assert preset.policy.log_std_init == -0.5 and preset.algo.max_kl_schedule == "linear"


def test_humanoid_wide_preset_is_the_budget_study_config_over_its_budget():
    """The budget study ran the preset's settings over 10M steps; the preset stops at 4M, radius shrunk to 0."""
    import dataclasses
    from pathlib import Path

    study = config.load(str(Path(__file__).parents[1] / "benchmarks" / "configs" / "humanoid-wide-10m.toml"))
    preset = config.load("humanoid-trpo-wide")
    assert study.run.total_steps == 10_000_000 and preset.run.total_steps == 4_000_000
    assert dataclasses.replace(study, name=preset.name, run=dataclasses.replace(study.run, total_steps=4_000_000)) == preset
    assert preset.algo.max_kl_schedule == "linear" and preset.algo.max_kl_final == 0.0
    assert config.find_preset("Humanoid-v5", "trpo") == "humanoid-trpo"


@pytest.mark.parametrize(("env", "env_id", "chosen", "std"), [("hopper", "Hopper-v5", ["algo.gamma=0.995"], -0.5),
                                                              ("halfcheetah", "HalfCheetah-v5", [], -0.5),
                                                              ("ant", "Ant-v5", [], -1.0)])
def test_wide_preset_is_the_walker2d_wide_settings_with_what_its_runs_chose(env, env_id, chosen, std):
    """The runs took benchmarks/configs/<env>-wide.toml (walker2d-trpo-wide's settings on the env, Ant's with
    its own starting std), Hopper's with `--set algo.gamma=...`; the preset is that config with the choice, and
    the env id still finds the plain one."""
    import dataclasses
    from pathlib import Path

    measured = str(Path(__file__).parents[1] / "benchmarks" / "configs" / f"{env}-wide.toml")
    preset = config.load(f"{env}-trpo-wide")
    assert dataclasses.replace(config.load(measured, chosen), name=preset.name) == preset
    walker = config.load("walker2d-trpo-wide", ["env.norm_obs_steps=none", f"policy.log_std_init={std}"])
    same_but_env = dataclasses.replace(walker, name=f"{env}-wide", env=dataclasses.replace(walker.env, id=env_id))
    assert config.load(measured) == same_but_env  # walker2d-trpo-wide as it was when they ran
    assert config.find_preset(env_id, "trpo") == f"{env}-trpo"


def test_an_env_id_finds_its_single_path_preset_never_the_vine_one():
    assert config.find_preset("CartPole-v1", "trpo") == "cartpole-trpo"
    assert config.load("CartPole-v1").run.sampling == "single-path"


def test_every_algorithm_config_documents_every_field():
    import ast
    import inspect

    for cls in {*config.ALGO_CONFIGS.values(), config.AlgoConfig, config.NaturalGradientConfig}:
        tree = ast.parse(inspect.getsource(cls))
        body = tree.body[0].body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                doc = body[i + 1] if i + 1 < len(body) else None
                assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), (cls.__name__, node.target.id)


def test_walker2d_notebook_preset_has_the_reference_notebook_settings():
    cfg = config.load("walker2d-trpo-notebook")
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


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("walker2d-trpo", ["run.seed=7"]),
        ("cartpole-a2c", ["algo.max_grad_norm=none", "env.max_episode_steps=100"]),
        ("walker2d-trpo-wide", ["env.norm_obs_steps=1000000"]),
        ("pendulum-ppo", ["algo.target_kl=0.01", "algo.max_grad_norm=none"]),
    ],
)
def test_toml_round_trip(tmp_path, preset, overrides):
    cfg = config.load(preset, overrides)
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
        ("critic.fit=newton", "critic.fit must be one of adam, lbfgs"),
        ("critic.l2=-1", "critic.l2 must be >= 0"),
        ("critic.lbfgs_iters=0", "critic.lbfgs_iters must be > 0"),
        ("env.norm_obs_steps=0", "env.norm_obs_steps must be > 0"),
        ("env.norm_obs_steps=1.5", "env.norm_obs_steps must be an integer"),
    ],
)
def test_bad_values_give_one_clear_error(override, message):
    with pytest.raises(ConfigError, match=None) as exc:
        config.load("cartpole-trpo", [override])
    assert message in str(exc.value)


@pytest.mark.parametrize(
    "raw, example",
    [("256,256", "[256, 256]"), ("256, 256", "[256, 256]"), ("32", "[32]")],
)
def test_a_list_without_brackets_is_answered_with_the_syntax_that_reads(raw, example):
    with pytest.raises(ConfigError) as exc:
        config.load("cartpole-trpo", [f"policy.hidden={raw}"])
    assert str(exc.value).endswith(f"policy.hidden must be a list, got {config.parse_value(raw)!r}; a list is "
                                   f"written in brackets, {example} (on the command line quoted: "
                                   f"--set 'policy.hidden={example}')")
    shown = f"policy.hidden={example}"
    assert config.load("cartpole-trpo", [shown]).policy.hidden == tuple(int(v) for v in raw.split(","))


@pytest.mark.parametrize(
    "preset, override, message",
    [
        ("cartpole-npg", "algo.step=huge", "algo.step must be one of kl, fixed"),
        ("cartpole-npg", "algo.step_size=0", "algo.step_size must be > 0"),
        ("cartpole-trpo", "algo.max_kl_schedule=cosine", "algo.max_kl_schedule must be one of constant, linear"),
        ("cartpole-npg", "algo.max_kl_final=-0.01", "algo.max_kl_final must be >= 0"),
        ("cartpole-trpo", "algo.fvp_samples=-1", "algo.fvp_samples must be >= 0"),
        ("cartpole-trpo", "critic.minibatches=-2", "critic.minibatches must be >= 0"),
        ("cartpole-ppo", "algo.max_kl_schedule=linear", "unknown key algo.max_kl_schedule"),
        ("cartpole-npg", "algo.backtrack_iters=3", "unknown key algo.backtrack_iters"),
        ("cartpole-ppo", "algo.clip_range=1.5", "algo.clip_range must be in (0, 1)"),
        ("cartpole-ppo", "algo.epochs=0", "algo.epochs must be > 0"),
        ("cartpole-ppo", "algo.minibatch=0", "algo.minibatch must be > 0"),
        ("cartpole-ppo", "algo.target_kl=-0.1", "algo.target_kl must be > 0"),
        ("cartpole-ppo", "algo.value_clip=0", "algo.value_clip must be > 0"),
        ("cartpole-a2c", "algo.max_grad_norm=0", "algo.max_grad_norm must be > 0"),
        ("cartpole-a2c", "algo.vf_coef=0", "algo.vf_coef must be > 0"),
        ("cartpole-reinforce", "algo.lr=0", "algo.lr must be > 0"),
        ("cartpole-reinforce", "algo.gae_lambda=0.9", "algo.gae_lambda must be 1.0 for reinforce"),
        ("cartpole-reinforce", "algo.baseline=1", "algo.baseline must be true or false"),
        # a key without its section, or in another, is answered with the full names it may mean
        ("cartpole-trpo", "max_kl=0.02", "--set key must be section.key (e.g. algo.max_kl), got 'max_kl'; "
                                         "did you mean algo.max_kl?"),
        ("cartpole-trpo", "maxkl=0.02", "got 'maxkl'; did you mean algo.max_kl?"),
        ("cartpole-trpo", "hidden=[32]", "got 'hidden'; did you mean policy.hidden, critic.hidden?"),
        ("cartpole-ppo", "clip_range=0.1", "got 'clip_range'; did you mean algo.clip_range?"),  # the config's algo
        ("cartpole-trpo", "run.max_kl=0.02", "unknown key run.max_kl; did you mean algo.max_kl?"),
        ("cartpole-trpo", "critic.log_std_init=0",
         "unknown key critic.log_std_init; did you mean policy.log_std_init?"),
        ("cartpole-trpo", "run.totalsteps=10", "unknown key run.totalsteps; did you mean run.total_steps?"),
    ],
)
def test_bad_algorithm_values_give_one_clear_error(preset, override, message):
    with pytest.raises(ConfigError) as exc:
        config.load(preset, [override])
    assert message in str(exc.value)


def test_fvp_samples_and_fvp_fraction_are_one_choice():
    with pytest.raises(ConfigError, match="algo.fvp_samples and algo.fvp_fraction both choose"):
        config.load("cartpole-trpo", ["algo.fvp_samples=256", "algo.fvp_fraction=0.1"])
    assert config.load("cartpole-trpo", ["algo.fvp_samples=256", "algo.fvp_fraction=1.0"]).algo.fvp_samples == 256


def test_optional_algorithm_fields_accept_none():
    cfg = config.load("cartpole-ppo", ["algo.target_kl=0.02", "algo.value_clip=0.2"])
    assert (cfg.algo.target_kl, cfg.algo.value_clip) == (0.02, 0.2)
    cfg = config.load("cartpole-ppo", ["algo.max_grad_norm=none"])
    assert cfg.algo.max_grad_norm is None


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ConfigError, match="unknown preset or env id 'walker-trpo'; did you mean walker2d-trpo"):
        config.load("walker-trpo")


@pytest.mark.parametrize(
    "spec, hint",
    [
        ("Cartpole-v1", "; did you mean CartPole-v1? ("),  # the same id but for case: the one suggestion
        ("cartpole-v1", "; did you mean CartPole-v1? ("),
        ("Pendulm-v1", "; did you mean Pendulum-v1, "),
        ("Walker2d-v9", "; did you mean Walker2d-v5, Walker2d-v4, Walker2d-v3? ("),
    ],
)
def test_a_mistyped_env_id_suggests_the_registered_ids(spec, hint):
    with pytest.raises(ConfigError) as exc:
        config.load(spec)
    assert str(exc.value).startswith(f"unknown preset or env id {spec!r}{hint}")


def test_a_mistyped_env_id_in_the_config_suggests_the_registered_id():
    with pytest.raises(ConfigError) as exc:
        config.load("cartpole-trpo", ["env.id=cartpole-v1"])
    assert str(exc.value).startswith("unknown environment id 'cartpole-v1'; did you mean CartPole-v1?;")


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        config.load("nope/missing.toml")
