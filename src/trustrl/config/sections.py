"""The config's sections other than ``[algo]``: one dataclass each, a docstring per field, ``validate()``.

``[algo]`` holds an algorithm's own settings, which live beside its update in :mod:`trustrl.algos`.
Nothing here imports torch: worker processes receive an :class:`EnvConfig`.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any

from trustrl.config.limits import (MAX_BATCH, MAX_ENVS, MAX_EPISODES, MAX_STEPS, check_device, check_seed, choice,
                                   non_negative, positive, widths)
from trustrl.envs.named_wrappers import check_wrappers
from trustrl.envs.registry import check_env_id
from trustrl.errors import ConfigError

ACTIVATIONS = ("tanh", "relu")
INITS = ("orthogonal", "kaiming", "xavier")


@dataclass
class EnvConfig:
    id: str = "CartPole-v1"
    """A registered gymnasium id (MuJoCo ids need the mujoco package, installed by default), or
    ``module:Id`` (``mypkg.envs:Line-v0``): the module is imported first, and registers ``Id`` when imported."""
    n_envs: int = 8
    """Copies stepped together; one batch is ``run.n_steps * n_envs`` transitions."""
    vectorization: str = "sync"
    """``sync`` steps the copies in this process; ``async`` gives each its own process."""
    norm_obs: bool = True
    """Normalise observations with one running mean/variance shared by all copies (image observations are
    never normalised: their pixels are scaled to [0, 1] instead)."""
    norm_obs_steps: int | None = None
    """The observation statistics learn from the batches that start within the first this-many env steps,
    then stay as they are; None: they learn the whole run. The trust region bounds the policy's change on
    normalised observations only, so statistics that move change what the policy does, unbounded: late in a
    long run, with the radius near 0, that drift alone can undo the gait."""
    norm_reward: bool = False
    """Scale rewards by the running std of the discounted return (not its mean)."""
    clip_obs: float = 10.0
    """Normalised observations are clipped to [-clip_obs, clip_obs]."""
    clip_reward: float = 10.0
    """Scaled rewards are clipped to [-clip_reward, clip_reward]."""
    max_episode_steps: int | None = None
    """Override the env's own time limit; None keeps the registered one."""
    kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for ``gymnasium.make`` (e.g. ``{ctrl_cost_weight = 0.001}``)."""
    imports: tuple[str, ...] = ()
    """Modules imported before the env is made, e.g. ``["mypkg.envs"]``, whose import registers the env's id
    with gymnasium. Saved with the run, so eval, video and --resume import them too."""
    wrappers: tuple[Any, ...] = ()
    """gymnasium wrappers put on every env copy, innermost first: ``"module:Wrapper"`` or
    ``{wrapper = "module:Wrapper", kwargs = {...}}`` (e.g. ``["gymnasium.wrappers:FlattenObservation"]``).
    Their modules are imported as ``imports`` are; saved with the run, so eval, video and --resume use them."""

    def validate(self) -> None:
        check_env_id(self.id, self.imports)
        check_wrappers(self.wrappers)
        positive("env.n_envs", self.n_envs, MAX_ENVS)
        choice("env.vectorization", self.vectorization, ("sync", "async"))
        positive("env.clip_obs", self.clip_obs)
        positive("env.clip_reward", self.clip_reward)
        if self.max_episode_steps is not None:
            positive("env.max_episode_steps", self.max_episode_steps, 10**9)
        if self.norm_obs_steps is not None:
            positive("env.norm_obs_steps", self.norm_obs_steps, 10**12)


@dataclass
class PolicyConfig:
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy MLP."""
    activation: str = "tanh"
    """``tanh`` or ``relu``."""
    init: str = "orthogonal"
    """Hidden-layer init: ``orthogonal`` (gain sqrt 2), ``kaiming`` (fan-in) or ``xavier``."""
    out_gain: float = 0.01
    """Gain of the output layer: small, so the first policy is near-uniform / zero-mean."""
    log_std_init: float = 0.0
    """Initial log standard deviation of a Gaussian policy (Box actions)."""
    log_std_min: float = -20.0
    """Lower clamp on the log-std, so the policy never collapses to a point."""
    log_std_max: float = 2.0
    """Upper clamp on the log-std."""

    def validate(self) -> None:
        widths("policy.hidden", self.hidden)
        choice("policy.activation", self.activation, ACTIVATIONS)
        choice("policy.init", self.init, INITS)
        positive("policy.out_gain", self.out_gain)
        if not self.log_std_min < self.log_std_max:
            raise ConfigError(
                f"policy.log_std_min ({self.log_std_min}) must be below "
                f"policy.log_std_max ({self.log_std_max})"
            )
        if not self.log_std_min <= self.log_std_init <= self.log_std_max:
            raise ConfigError("policy.log_std_init must lie within [log_std_min, log_std_max]")


@dataclass
class CriticConfig:
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the value MLP (a separate network from the policy)."""
    activation: str = "tanh"
    """``tanh`` or ``relu``."""
    init: str = "orthogonal"
    """Hidden-layer init, as for the policy."""
    fit: str = "adam"
    """How the value net is fitted to the returns: ``adam`` or ``lbfgs`` (full batch, after the policy
    step). With ``adam``, A2C and PPO train the critic inside their own update (a joint loss, their
    minibatches); TRPO, NPG and REINFORCE run ``critic.epochs`` of Adam minibatches."""
    lr: float = 1e-3
    """Adam learning rate of the critic (for every algorithm)."""
    epochs: int = 10
    """Adam fitter (TRPO, NPG, REINFORCE): passes over the batch per update."""
    minibatch: int = 64
    """Adam fitter (TRPO, NPG, REINFORCE): minibatch size."""
    minibatches: int = 0
    """Adam fitter (TRPO, NPG, REINFORCE): when positive, each epoch splits the batch into this many
    minibatches in place of ``minibatch`` rows each, so the fit takes ``epochs * minibatches`` Adam steps
    whatever the batch size: a wider batch makes wider steps, not more of them."""
    l2: float = 0.0
    """L2 penalty ``l2 * sum ||W||^2`` on the value-net weight matrices (biases are not penalised)."""
    lbfgs_iters: int = 25
    """L-BFGS: maximum iterations per update (the budget of reference notebook 001)."""

    def validate(self) -> None:
        widths("critic.hidden", self.hidden)
        choice("critic.activation", self.activation, ACTIVATIONS)
        choice("critic.init", self.init, INITS)
        choice("critic.fit", self.fit, ("adam", "lbfgs"))
        positive("critic.lr", self.lr)
        positive("critic.epochs", self.epochs, 10_000)
        positive("critic.minibatch", self.minibatch, MAX_BATCH)
        non_negative("critic.minibatches", self.minibatches, MAX_BATCH)
        non_negative("critic.l2", self.l2)
        positive("critic.lbfgs_iters", self.lbfgs_iters, 10_000)


@dataclass
class RunConfig:
    total_steps: int = 100_000
    """Environment steps to train for (summed over all copies): whole batches of run.n_steps x env.n_envs, at least
    one, so another number is rounded down, and a note says so."""
    n_steps: int = 256
    """Steps per copy per batch."""
    seed: int = 0
    """Seeds the envs, torch and numpy: same seed and config give the same metrics on CPU. Each env copy, each
    evaluation episode, each noise stream has a seed of its own hashed from this one and its index, so runs of
    neighbouring seeds share no episode."""
    torch_threads: int = 1
    """Intra-op threads for torch; small MLPs on batches of a few thousand run fastest on one, wide
    batches (tens of thousands of steps an update) faster on two or more where cores are free."""
    overlap_critic: bool = True
    """Fit the critic on batch k in a background thread beside the policy step of k and while batch
    k+1 is collected (TRPO, NPG). The math is unchanged -- GAE for batch k+1 waits for the fitted
    critic -- and so are metrics.csv and the checkpoints; only the wall-clock time shrinks."""
    checkpoint_every: int = 10
    """Write the ``last`` checkpoint every this many updates (and at the end)."""
    best_window: int = 20
    """Training episodes in the rolling ``episode_return_mean``; with ``eval_every = 0``, ``best`` is saved
    when the mean of this many recent episode returns beats the best so far."""
    device: str = "cpu"
    """Torch device of the learner's networks (``cuda`` for wide batches on a GPU); acting always runs
    on numpy copies of the policy."""
    video_every: int = 0
    """Film one deterministic evaluation episode every this many env steps into
    ``<run_dir>/videos/step-<N>.mp4`` (0: never). Needs a renderable env (MuJoCo headless: the EGL libraries)."""
    eval_every: int = 0
    """Play ``eval_episodes`` deterministic episodes on a separate env at the start, after each batch that
    crosses a multiple of this many env steps, and at the end (the final policy) (0: never). With it on,
    ``best`` is the checkpoint with the best evaluation; off, ``best`` follows the rolling mean of
    ``best_window`` training episodes."""
    eval_episodes: int = 10
    """Episodes per evaluation during training (the same episodes every time, the run's own: their reset seeds
    come from ``run.seed``)."""
    workers: int = 1
    """Processes (or Ray actors) that simulate the env copies, each a contiguous share of them collecting whole
    fragments (1 with ``sampler = "local"``: this process steps them). The same seed gives the same metrics.csv
    whatever this is."""
    placement: str = "local"
    """``local``: the workers are processes on this machine; ``ray``: Ray actors (``RAY_ADDRESS`` picks the cluster)."""
    worker_cpus: float = 1.0
    """CPUs each Ray actor reserves (``run.placement = "ray"``); fractions share a CPU between actors."""
    sampling: str = "single-path"
    """How the policy gradient is estimated: ``single-path`` (GAE along the trajectories) or ``vine`` (TRPO
    paper, section 5.2: Q-values from branched rollouts at a set of states along them; see ``[vine]``)."""
    on_nonfinite: str = "stop"
    """A NaN or infinity in a batch (reward, observation) or made by an update (loss, gradient, weights):
    ``stop`` ends the run with one error naming the step and what was not finite, before anything of it is
    saved; ``skip`` drops the batch (or undoes the update), counts it in ``skipped_batches`` and goes on."""
    wandb: bool = False
    """Mirror every metrics.csv and timing.csv row and the resolved config to Weights & Biases (the ``wandb``
    extra: ``pip install 'trustrl[wandb]'``), in ``<run_dir>/wandb``; ``WANDB_MODE=offline`` needs no account."""
    wandb_project: str = "trustrl"
    """W&B project of the run."""
    wandb_entity: str = ""
    """W&B entity (user or team); empty: your default entity."""
    wandb_group: str = ""
    """W&B group, e.g. to gather the seeds of one experiment; empty: none."""
    async_sampling: bool = False
    """Collect batch k+1 with the policy before update k while update k is computed (TRPO, NPG): with
    ``workers > 1`` or Ray, simulation and learning overlap (with the copies in this process they still take
    turns). Each batch is then one update stale; the surrogate weights it by pi_theta / beta with beta the
    policy that acted, under the trust region around the current policy."""
    init_from: str = ""
    """Start from another run's checkpoint, ``RUN[:last|best|step-N]`` (default ``last``): its policy weights,
    observation statistics and -- where its shape matches -- critic; the optimiser, the step count and the
    rest of the run are new (empty: from scratch). The spaces and the policy's shape must match."""

    def validate(self) -> None:
        positive("run.total_steps", self.total_steps, MAX_STEPS)
        positive("run.n_steps", self.n_steps, MAX_BATCH)
        check_seed("run.seed", self.seed)
        positive("run.torch_threads", self.torch_threads, 1_024)
        positive("run.checkpoint_every", self.checkpoint_every, MAX_STEPS)
        check_device(self.device)
        positive("run.best_window", self.best_window, 1_000_000)
        non_negative("run.video_every", self.video_every, MAX_STEPS)
        non_negative("run.eval_every", self.eval_every, MAX_STEPS)
        positive("run.eval_episodes", self.eval_episodes, MAX_EPISODES)
        positive("run.workers", self.workers, MAX_ENVS)
        if self.placement in SAMPLING_SCHEMES and self.placement != "single-path":
            raise ConfigError(f"run.placement says where the env copies run ({', '.join(PLACEMENTS)}); "
                              f"the {self.placement} scheme is run.sampling = {self.placement!r}")
        choice("run.placement", self.placement, PLACEMENTS)
        choice("run.sampling", self.sampling, SAMPLING_SCHEMES)
        choice("run.on_nonfinite", self.on_nonfinite, ("stop", "skip"))
        if not isinstance(self.init_from, str) or len(self.init_from) > 4096:
            raise ConfigError(f"run.init_from must be a run directory (a path, optionally :last, :best or :step-N), "
                              f"got {self.init_from!r}")
        if not 0.0 <= self.worker_cpus <= 1024 or not math.isfinite(self.worker_cpus):
            raise ConfigError(f"run.worker_cpus must be between 0 and 1024, got {self.worker_cpus}")
        if self.wandb:
            if not self.wandb_project:
                raise ConfigError("run.wandb_project must not be empty with run.wandb = true")
            if importlib.util.find_spec("wandb") is None:
                raise ConfigError("run.wandb = true needs the wandb package: pip install 'trustrl[wandb]' "
                                  "(WANDB_MODE=offline writes the run to disk without an account)")


PLACEMENTS = ("local", "ray")
SAMPLING_SCHEMES = ("single-path", "vine")
VINE_KL_STATES = ("rollout", "trunk")


@dataclass
class VineConfig:
    """Vine sampling (``run.sampling = "vine"``): Q(s, a) from rollouts branched at states of the trunk.

    Each batch simulates the trunk (``run.n_steps`` per env copy, as single path does), picks
    ``rollout_set`` of its states, and from each one tries ``branches`` actions, every branch a
    rollout of ``horizon`` steps. All of it -- trunk and branches -- counts as env steps.
    """

    rollout_set: int = 64
    """States branched from per batch, spread evenly over the env copies, at random times of the trunk."""
    branches: int = 4
    """Actions tried at each rollout state when actions are continuous (drawn from the acting policy; at
    least 2). A Discrete action space tries every action, and the surrogate sums over them exactly."""
    horizon: int = 50
    """Steps of each branch, its first action included; an episode that ends earlier ends the branch."""
    bootstrap: bool = True
    """Add gamma^h V(s_h) where a branch stops at the horizon or a time limit (not at a terminal state);
    false: Q is the discounted sum of the branch's rewards alone."""
    common_random_numbers: bool = True
    """The branches from one state share one noise sequence after their first action, so differences of
    their Q-values reflect the action, not the noise."""
    kl_states: str = "trunk"
    """Where the trust region's mean KL (and the Fisher matrix) is measured: ``trunk`` -- every state of the
    trunk, so a step is held to how far the policy moves wherever it acted, not only at a few hundred
    states; ``rollout`` -- only the rollout states, where the surrogate is (the TRPO paper's vine)."""
    critic_on_branches: bool = False
    """Fit the critic on the rollout states' values from their branches (the mean of their Q-values; for a
    Discrete space, weighted by pi_old) as well as on the trunk's returns. Needs ``bootstrap``: a branch cut
    at the horizon without gamma^h V(s_h) is a truncated return, short of the value the critic learns."""

    def validate(self) -> None:
        choice("vine.kl_states", self.kl_states, VINE_KL_STATES)
        positive("vine.rollout_set", self.rollout_set, MAX_BATCH)
        if self.branches < 2:
            raise ConfigError(f"vine.branches must be >= 2 (one action per state gives no gradient), "
                              f"got {self.branches}")
        positive("vine.branches", self.branches, 1_024)
        positive("vine.horizon", self.horizon, 10**6)
        if self.critic_on_branches and not self.bootstrap:
            raise ConfigError("vine.critic_on_branches needs vine.bootstrap = true: a branch cut at the horizon "
                              "without gamma^h V(s_h) is a truncated return, not a value for the critic")


WEIGHTINGS = ("self-normalised", "clipped")


@dataclass
class OfflineConfig:
    """Training from a fixed dataset (``trustrl train --offline ID``) instead of the env; see ``trustrl.algos.offline_trpo``."""

    dataset: str = ""
    """Minari dataset id (under ``MINARI_DATASETS_PATH``) or path; when set, ``trustrl train`` learns from it offline."""
    epochs: int = 50
    """Passes over the dataset; each pass takes one trust-region step per minibatch."""
    minibatch: int = 0
    """Transitions per trust-region step; 0 uses the whole dataset (one step per epoch)."""
    max_kl_behaviour: float = 0.2
    """Trust region around the data: mean KL(beta || pi) over the dataset's states may not exceed this."""
    weights: str = "self-normalised"
    """Importance weights pi/beta: ``self-normalised`` (divided by their mean) or ``clipped`` (at ``weight_clip``)."""
    weight_clip: float = 10.0
    """Upper bound on a single importance weight when ``weights = "clipped"``."""
    critic_rounds: int = 3
    """Rounds of fitting the critic to the dataset's lambda-returns (each recomputes the targets) before the policy moves."""
    bc_epochs: int = 20
    """Maximum-likelihood fit of the behaviour policy (the starting policy, and beta when the dataset lacks it): passes."""
    bc_lr: float = 1e-3
    """Adam learning rate of that fit."""
    bc_minibatch: int = 256
    """Minibatch size of that fit."""
    eval_every: int = 5
    """Evaluate online (deterministic episodes in the env) every this many epochs, at the start, and at the end
    (the last epoch, or where training stops early)."""
    eval_episodes: int = 5
    """Episodes per online evaluation; ``best`` is the checkpoint with the best evaluation."""

    def validate(self) -> None:
        positive("offline.epochs", self.epochs, 10**6)
        non_negative("offline.minibatch", self.minibatch, MAX_BATCH)
        positive("offline.max_kl_behaviour", self.max_kl_behaviour)
        choice("offline.weights", self.weights, WEIGHTINGS)
        if not self.weight_clip > 1.0:
            raise ConfigError(f"offline.weight_clip must be > 1, got {self.weight_clip}")
        non_negative("offline.critic_rounds", self.critic_rounds, 1_000)
        non_negative("offline.bc_epochs", self.bc_epochs, 10**5)
        positive("offline.bc_lr", self.bc_lr)
        positive("offline.bc_minibatch", self.bc_minibatch, MAX_BATCH)
        positive("offline.eval_every", self.eval_every, 10**6)
        positive("offline.eval_episodes", self.eval_episodes, MAX_EPISODES)
