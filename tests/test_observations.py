"""Observations other than a flat Box: Dicts flattened when the env is made, images through a CNN encoder,
and wrappers named in the config -- the same in one env, vector envs, worker processes and saved runs."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import observation_envs  # noqa: F401 -- tests/ is on sys.path; importing it registers the envs
import pytest
import torch
from continued import assert_extended_is_the_run_in_one_go

import trustrl
from trustrl.cli import main
from trustrl.config import load as load_config
from trustrl.encoders import ImageEncoder
from trustrl.envs import describe_spaces, make_env, make_vec_env
from trustrl.envs.observations import FlatBox
from trustrl.errors import CheckpointError, ConfigError
from trustrl.nets import CategoricalPolicy, GaussianPolicy, make_critic, make_policy, numpy_actor
from trustrl.torch_actor import TorchActor

IMPORTS = 'env.imports=["observation_envs"]'


def env_config(env_id, *overrides):
    return load_config(env_id, [IMPORTS, *overrides]).env


def run_cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "trustrl", *args], capture_output=True, text=True, env=env,
                          timeout=300)


# --- Dict observations -------------------------------------------------------------------------------------


def by_hand(obs):
    """DictGoal's observation flattened independently: sorted keys (extra.noise, goal, pos), goal one-hot."""
    return np.concatenate([obs["extra"]["noise"].ravel(), np.eye(3)[obs["goal"]], obs["pos"]])


def test_dict_observations_are_flattened_in_sorted_key_order_with_discrete_entries_one_hot():
    cfg = env_config("DictGoal-v0", "env.n_envs=3")
    raw_env = gym.make("DictGoal-v0")
    env = make_env(cfg)
    assert isinstance(env.observation_space, FlatBox) and env.observation_space.shape == (8,)
    raw, _ = raw_env.reset(seed=5)
    flat, _ = env.reset(seed=5)
    np.testing.assert_array_equal(flat, by_hand(raw))
    raw, *_ = raw_env.step(0)
    flat, *_ = env.step(0)
    np.testing.assert_array_equal(flat, by_hand(raw))
    for vectorization in ("sync", "async"):
        envs = make_vec_env(env_config("DictGoal-v0", "env.n_envs=3", f"env.vectorization={vectorization}"))
        try:
            obs, _ = envs.reset(seed=[5, 6, 7])
            assert obs.shape == (3, 8)
            np.testing.assert_array_equal(obs[0], by_hand(raw_env.reset(seed=5)[0]))
            np.testing.assert_array_equal(obs[2], by_hand(raw_env.reset(seed=7)[0]))
        finally:
            envs.close()


def test_the_spaces_record_the_dict_keys_and_shapes_and_a_flat_box_is_described_as_before():
    env = make_env(env_config("DictGoal-v0"))
    described = describe_spaces(env.observation_space, env.action_space)
    assert described["obs_shape"] == [8]
    assert described["obs_source"] == {"dict": {
        "extra": {"dict": {"noise": {"box": [2, 2], "dtype": "float32"}}},
        "goal": {"discrete": 3, "start": 0},
        "pos": {"box": [1], "dtype": "float32"},
    }}
    cartpole = gym.make("CartPole-v1")
    assert describe_spaces(cartpole.observation_space, cartpole.action_space) == {
        "obs_shape": [4], "action": {"type": "discrete", "n": 2}}


class _Shaped(gym.Env):
    action_space = gym.spaces.Discrete(2)

    def __init__(self, space):
        self.observation_space = space

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


@pytest.mark.parametrize("space, words", [
    (gym.spaces.Dict({"text": gym.spaces.Text(5)}), "entry 'text'"),
    (gym.spaces.Box(0, 255, (10, 10, 10), np.uint8), "channels"),
    (gym.spaces.Box(-np.inf, np.inf, (8, 8, 3), np.float32), "finite bounds"),
])
def test_observations_that_cannot_be_flattened_are_refused_in_one_line(space, words):
    env_id = trustrl.envs.register_factory(lambda: _Shaped(space), "shaped")
    with pytest.raises(ConfigError, match=words) as caught:
        make_env(load_config(env_id).env)
    assert "\n" not in str(caught.value)


def test_a_dict_observation_env_is_learned_evaluated_and_loaded_and_acts_on_raw_dicts(tmp_path):
    run = tmp_path / "dict"
    assert main(["train", "DictGoal-v0", "--set", IMPORTS, "--set", "run.n_steps=64", "--set", "algo.max_kl=0.05",
                 "--total-steps", "12288", "--run-dir", str(run), "--quiet"]) == 0
    result = trustrl.evaluate(run, episodes=10)
    assert result.mean_return >= 7.0  # chance: 8/3; the goal is the one-hot entry among the others
    agent = trustrl.load(run)
    raw_env = gym.make("DictGoal-v0")
    obs, _ = raw_env.reset(seed=3)
    for _ in range(5):
        action = agent.act(obs)
        assert action == agent.act(by_hand(obs).astype(np.float32)) == obs["goal"]
        obs, *_ = raw_env.step(action)
    batch = [raw_env.reset(seed=s)[0] for s in range(4)]
    np.testing.assert_array_equal(agent.act_batch(batch), [o["goal"] for o in batch])
    assert agent.predict(batch[0], deterministic=True) == (batch[0]["goal"], None)  # SB3's predict, raw dicts
    np.testing.assert_array_equal(agent.predict(batch, deterministic=True)[0], [o["goal"] for o in batch])

    spaces = dict(observation_envs.DictGoal.observation_space.spaces)
    spaces["place"] = spaces.pop("pos")  # the same flat size, the entry under another key

    class Renamed(observation_envs.DictGoal):
        observation_space = gym.spaces.Dict(spaces)

    with pytest.raises(CheckpointError, match="trained on spaces"):
        trustrl.load(run, env=Renamed)


# --- Image observations ------------------------------------------------------------------------------------


def test_the_image_encoder_reshapes_hwc_and_chw_pixels_alike_and_scales_them_to_the_unit_range():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)  # HWC
    expected = torch.from_numpy(image).permute(2, 0, 1).double() / 255.0  # independent: (C, H, W) in [0, 1]
    hwc = ImageEncoder("hwc", (3, 6, 10), 0.0, 255.0)
    chw = ImageEncoder("chw", (3, 6, 10), 0.0, 255.0)
    chw.load_state_dict(hwc.state_dict())
    flat_hwc = torch.from_numpy(image.reshape(1, -1).astype(np.float32))
    flat_chw = torch.from_numpy(image.transpose(2, 0, 1).reshape(1, -1).astype(np.float32))
    torch.testing.assert_close(hwc.images(flat_hwc)[0].double(), expected)
    torch.testing.assert_close(chw.images(flat_chw)[0].double(), expected)
    torch.testing.assert_close(hwc(flat_hwc), chw(flat_chw))
    assert hwc(flat_hwc.repeat(2, 3, 1)).shape == (2, 3, 128)  # any leading batch shape


def image_space(shape=(8, 8, 1)):
    return FlatBox(gym.spaces.Box(0, 255, shape, np.uint8))


def test_image_policies_and_critics_get_an_encoder_and_flat_ones_keep_their_exact_parameters():
    cfg = load_config("CartPole-v1")
    policy = make_policy(image_space(), gym.spaces.Discrete(2), cfg.policy)
    assert isinstance(policy.logits_net.encoder, ImageEncoder)
    assert isinstance(make_critic(image_space(), cfg.critic).net.encoder, ImageEncoder)
    torch.manual_seed(0)
    flat = make_policy(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), cfg.policy)
    torch.manual_seed(0)
    reference = torch.nn.Sequential(*[torch.nn.Linear(a, b) for a, b in [(4, 64), (64, 64), (64, 2)]])
    assert [n for n, _ in flat.named_parameters()] == [f"logits_net.layers.{i}.{w}" for i in range(3)
                                                       for w in ("weight", "bias")]
    assert sum(p.numel() for p in flat.parameters()) == sum(p.numel() for p in reference.parameters())


def categorical_fisher(policy, obs):
    """The Fisher matrix from the Jacobian of the logits: mean over states of J^T (diag p - p p^T) J."""
    params = dict(policy.named_parameters())
    names = list(params)

    def logits_of(*flat_params):
        out = torch.func.functional_call(policy, dict(zip(names, flat_params)), (obs,))
        return out.logits

    jac = torch.autograd.functional.jacobian(logits_of, tuple(params.values()))
    J = torch.cat([j.reshape(obs.shape[0], -1, params[n].numel()) for j, n in zip(jac, names)], dim=-1)
    with torch.no_grad():
        p = policy(obs).probs
    H = torch.diag_embed(p) - p[..., :, None] * p[..., None, :]
    return torch.einsum("bap,bac,bcq->pq", J, H, J) / obs.shape[0]


def test_the_fisher_vector_product_goes_through_the_cnn():
    from trustrl.trust_region import fisher_vector_product

    torch.manual_seed(0)
    cfg = load_config("CartPole-v1", ["policy.hidden=[8]"]).policy
    policy = make_policy(image_space((4, 4, 1)), gym.spaces.Discrete(3), cfg).double()
    obs = torch.randint(0, 256, (5, 16)).double()
    with torch.no_grad():
        old = policy(obs)
    fvp = fisher_vector_product(old.kl(policy(obs)).mean(), list(policy.parameters()), damping=0.0)
    fisher = categorical_fisher(policy, obs)
    n_conv = sum(p.numel() for p in policy.logits_net.encoder.convs.parameters())
    for seed in range(2):
        v = torch.randn(fisher.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        got = fvp(v)
        torch.testing.assert_close(got, fisher @ v, rtol=1e-6, atol=1e-9)
        assert got[:n_conv].abs().max() > 0  # the convolutions are in the trust region


@pytest.mark.parametrize("policy_class", [CategoricalPolicy, GaussianPolicy])
def test_an_image_policy_acts_through_its_torch_network_row_by_row(policy_class):
    torch.manual_seed(0)
    cfg = load_config("Pendulum-v1").policy
    act_space = gym.spaces.Discrete(3) if policy_class is CategoricalPolicy else gym.spaces.Box(-1, 1, (2,))
    policy = make_policy(image_space(), act_space, cfg)
    actor = numpy_actor(policy)
    assert isinstance(actor, TorchActor) and actor.noise_size == 3 - (policy_class is GaussianPolicy)
    obs = np.random.default_rng(1).integers(0, 256, (5, 64)).astype(np.float32)
    head = policy.logits_net if policy_class is CategoricalPolicy else policy.mean_net
    with torch.no_grad():
        expected = head(torch.from_numpy(obs)).numpy()
    out = actor.forward(obs)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    for i in range(5):
        np.testing.assert_array_equal(actor.forward(obs[i : i + 1])[0], out[i])  # the same bits alone
    noise = actor.draw_noise(np.random.default_rng(2), 5)
    if policy_class is GaussianPolicy:
        std = policy.log_std.detach().exp().numpy()
        np.testing.assert_allclose(actor.act(obs, noise), out + std * noise, rtol=1e-6)
    else:
        np.testing.assert_array_equal(actor.act(obs, noise), np.argmax(out - np.log(-np.log(noise)), axis=-1))


def test_trpo_learns_which_half_of_the_image_holds_the_dot(tmp_path):
    run = tmp_path / "dot"
    assert main(["train", "Dot-v0", "--set", IMPORTS, "--set", "run.n_steps=64", "--set", "algo.max_kl=0.02",
                 "--total-steps", "16384", "--run-dir", str(run), "--quiet"]) == 0
    assert trustrl.evaluate(run, episodes=10).mean_return >= 7.5  # blind: 4 an episode, seeing: 8
    saved = json.loads((run / "checkpoints" / "last.json").read_text())
    assert saved["spaces"]["obs_source"] == {"box": [12, 12, 1], "dtype": "uint8"}
    assert not saved["obs_norm"]["enabled"] and saved["obs_norm"]["mean"] == 0.0  # no per-pixel statistics
    agent = trustrl.load(run)
    raw = gym.make("Dot-v0")
    obs, _ = raw.reset(seed=1)
    assert agent.act(obs) == agent.act(obs.reshape(-1)) == raw.unwrapped.side  # raw HWC image or flat
    assert agent.predict(obs, deterministic=True)[0] == raw.unwrapped.side
    np.testing.assert_array_equal(agent.predict(np.stack([obs, obs]), deterministic=True)[0], [raw.unwrapped.side] * 2)


def test_an_image_policy_exports_continues_and_is_seen_by_callbacks_as_it_acts(tmp_path):
    """Images meet the other features: the exported module, predict on a flat image, --init-from between image
    runs, and the agent a callback is given all take the observations the env gives."""
    seen = []

    def watch(step, row, agent):
        obs, _ = gym.make("Dot-v0").reset(seed=step)
        seen.append(agent.act(obs) == agent.act(obs.reshape(-1)))

    sets = [IMPORTS, "run.n_steps=64"]
    run = tmp_path / "dot"
    trustrl.train("Dot-v0", overrides=sets, total_steps=512, run_dir=run, progress=False, callbacks=[watch])
    assert seen and all(seen)
    agent = trustrl.load(run)
    raw = gym.make("Dot-v0")
    images = np.stack([raw.reset(seed=s)[0] for s in range(64)])
    flat = images.reshape(len(images), -1)
    module = agent.to_torch()
    np.testing.assert_array_equal(module(torch.from_numpy(flat.astype(np.float32))).numpy(), agent.act_batch(images))
    traced = torch.jit.trace(module, torch.zeros(2, flat.shape[1]))
    np.testing.assert_array_equal(traced(torch.from_numpy(flat.astype(np.float32))).numpy(), agent.act_batch(flat))
    assert agent.predict(flat[0], deterministic=True)[0] == agent.act(images[0])  # one flat image: one action
    again = trustrl.train("Dot-v0", overrides=sets, total_steps=512, run_dir=tmp_path / "again", progress=False,
                          init_from=f"{run}:last")  # env.norm_obs is on by default; images have no statistics
    assert again.steps == 512


def dot_run(tmp_path, name, *layout):
    sets = [IMPORTS, "env.kwargs={channels_first = true}", "run.n_steps=32", "env.n_envs=4", *layout]
    assert main(["train", "Dot-v0", *[a for s in sets for a in ("--set", s)], "--total-steps", "384", "--quiet",
                 "--run-dir", str(tmp_path / name)]) == 0
    return (tmp_path / name / "metrics.csv").read_text()


def test_a_channels_first_image_env_trains_in_worker_processes_with_the_numbers_of_one_process(tmp_path):
    one = dot_run(tmp_path, "one")
    assert len(one.splitlines()) == 4 and dot_run(tmp_path, "two", "run.workers=2") == one


@pytest.mark.xdist_group("ray")
def test_an_image_policy_acts_on_ray_actors_with_the_numbers_of_one_process(tmp_path, ray_cluster):
    import cloudpickle

    cloudpickle.register_pickle_by_value(observation_envs)  # Ray's workers have no tests/ folder to import from
    try:
        def dot():
            return observation_envs.Dot(channels_first=True)

        sets = ["env.max_episode_steps=8", "run.n_steps=32", "env.n_envs=4"]
        runs = {name: tmp_path / name for name in ("one", "ray")}
        trustrl.train(env=dot, overrides=sets, total_steps=384, run_dir=runs["one"], progress=False)
        trustrl.train(env=dot, overrides=[*sets, 'run.placement="ray"', "run.workers=2"], total_steps=384,
                      run_dir=runs["ray"], progress=False)
    finally:
        cloudpickle.unregister_pickle_by_value(observation_envs)
    one, ray = ((run / "metrics.csv").read_text() for run in runs.values())
    assert len(one.splitlines()) == 4 and one == ray


# --- Wrappers named in the config --------------------------------------------------------------------------


PIXELS = ['env.kwargs={render_mode = "rgb_array"}',
          'env.wrappers=[{wrapper = "gymnasium.wrappers:AddRenderObservation", kwargs = {render_only = true}}, '
          '{wrapper = "observation_envs:Downsample", kwargs = {every = 25}}]']


def test_cartpole_from_pixels_trains_through_config_wrappers_and_its_checkpoint_comes_back(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    run = tmp_path / "pixels"
    sets = [arg for item in [IMPORTS, *PIXELS, "env.n_envs=2", "run.n_steps=64", "run.eval_episodes=1"]
            for arg in ("--set", item)]
    assert main(["train", "CartPole-v1", *sets, "--total-steps", "384", "--run-dir", str(run), "--quiet"]) == 0
    saved = json.loads((run / "checkpoints" / "last.json").read_text())
    assert saved["spaces"]["obs_source"] == {"box": [16, 24, 3], "dtype": "uint8"}  # 400x600 every 25th pixel
    agent = trustrl.load(run)
    assert isinstance(agent.policy.logits_net.encoder, ImageEncoder)
    env = make_env(agent.config.env)
    obs, _ = env.reset(seed=0)
    with torch.no_grad():
        expected = agent.policy(torch.from_numpy(obs.astype(np.float32))[None]).mode()
    assert agent.act(obs) == int(expected)
    out = run_cli("eval", str(run), "--episodes", "1", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["episodes"] == 1


def test_config_wrappers_are_saved_with_the_run_and_eval_in_another_process_rebuilds_them(tmp_path):
    run = tmp_path / "wrapped"
    wrappers = ('env.wrappers=["gymnasium.wrappers:FlattenObservation", '
                '{wrapper = "gymnasium.wrappers:TimeLimit", kwargs = {max_episode_steps = 5}}]')
    assert main(["train", "DictGoal-v0", "--set", IMPORTS, "--set", wrappers, "--set", "run.n_steps=16",
                 "--total-steps", "256", "--run-dir", str(run), "--quiet"]) == 0
    assert (run / "metrics.csv").read_text().splitlines()[1].split(",")[3] == "5.0"  # episode_length_mean
    saved = json.loads((run / "checkpoints" / "last.json").read_text())
    assert "obs_source" not in saved["spaces"]  # gymnasium's wrapper flattened it before trustrl saw it
    out = run_cli("eval", str(run), "--episodes", "2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["lengths"] == [5, 5]


@pytest.mark.parametrize("wrappers, words", [
    ('["no_such_module:Wrapper"]', "cannot import module 'no_such_module'"),
    ('["gymnasium.wrappers:NoSuchWrapper"]', "has no attribute 'NoSuchWrapper'"),
    ('["gymnasium.spaces:Box"]', "is not a gymnasium.Wrapper"),
    ('[{wrapper = "gymnasium.wrappers:TimeLimit", kwargs = {max_steps = 5}}]', "bad kwargs"),
    ('["TimeLimit"]', "the form is"),
    ('[{wrapper = "gymnasium.wrappers:TimeLimit", args = 5}]', "the form is"),
])
def test_a_bad_wrapper_is_one_error_line_and_exit_2(tmp_path, capsys, wrappers, words):
    code = main(["train", "CartPole-v1", "--set", f"env.wrappers={wrappers}", "--total-steps", "256",
                 "--run-dir", str(tmp_path / "bad"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0]
    assert not (tmp_path / "bad").exists()


def test_an_image_run_extended_with_resume_is_the_run_in_one_go(tmp_path):
    common = ["--set", IMPORTS, "--set", "run.n_steps=32", "--set", "env.n_envs=4", "--set", "run.eval_every=256",
              "--set", "run.eval_episodes=2", "--quiet"]
    assert main(["train", "Dot-v0", *common, "--total-steps", "512", "--run-dir", str(tmp_path / "whole")]) == 0
    assert main(["train", "Dot-v0", *common, "--total-steps", "256", "--run-dir", str(tmp_path / "part")]) == 0
    assert main(["train", "--resume", str(tmp_path / "part"), "--total-steps", "512", "--quiet"]) == 0
    assert_extended_is_the_run_in_one_go(tmp_path / "part", tmp_path / "whole", boundary=256)
