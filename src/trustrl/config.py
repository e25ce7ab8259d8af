"""Run configuration: dataclasses with a docstring per field, TOML presets, validation.

A config is five sections -- ``env``, ``policy``, ``critic``, ``algo``, ``run`` --
each a dataclass, plus ``offline``, read only when training from a dataset, and
``vine``, read only with ``run.sampling = "vine"``.
Presets are TOML files with the same sections; ``--set section.key=value``
overrides one field. Every value is checked once, here, so
the rest of the library can trust it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import tomli_w

from trustrl.errors import ConfigError, EnvUnavailableError

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
    """Normalise observations with one running mean/variance shared by all copies."""
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

    def validate(self) -> None:
        check_env_id(self.id, self.imports)
        _positive("env.n_envs", self.n_envs, MAX_ENVS)
        _choice("env.vectorization", self.vectorization, ("sync", "async"))
        _positive("env.clip_obs", self.clip_obs)
        _positive("env.clip_reward", self.clip_reward)
        if self.max_episode_steps is not None:
            _positive("env.max_episode_steps", self.max_episode_steps, 10**9)


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
        _hidden("policy.hidden", self.hidden)
        _choice("policy.activation", self.activation, ACTIVATIONS)
        _choice("policy.init", self.init, INITS)
        _positive("policy.out_gain", self.out_gain)
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
    l2: float = 0.0
    """L2 penalty ``l2 * sum ||W||^2`` on the value-net weight matrices (biases are not penalised)."""
    lbfgs_iters: int = 25
    """L-BFGS: maximum iterations per update (the budget of reference notebook 001)."""

    def validate(self) -> None:
        _hidden("critic.hidden", self.hidden)
        _choice("critic.activation", self.activation, ACTIVATIONS)
        _choice("critic.init", self.init, INITS)
        _choice("critic.fit", self.fit, ("adam", "lbfgs"))
        _positive("critic.lr", self.lr)
        _positive("critic.epochs", self.epochs, 10_000)
        _positive("critic.minibatch", self.minibatch, MAX_BATCH)
        _non_negative("critic.l2", self.l2)
        _positive("critic.lbfgs_iters", self.lbfgs_iters, 10_000)


@dataclass
class AlgoConfig:
    """Fields every algorithm shares: how advantages are estimated."""

    name: str = "trpo"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    gae_lambda: float = 0.95
    """GAE lambda in [0, 1]: 0 is one-step TD, 1 is Monte-Carlo minus the baseline."""
    normalize_advantage: bool = True
    """Standardise advantages over the batch before the policy update."""
    entropy_coef: float = 0.0
    """Weight of the mean policy entropy added to the objective."""

    def validate(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"algo.gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ConfigError(f"algo.gae_lambda must be in [0, 1], got {self.gae_lambda}")
        _non_negative("algo.entropy_coef", self.entropy_coef)


MAX_KL_SCHEDULES = ("constant", "linear")


@dataclass
class NaturalGradientConfig(AlgoConfig):
    """Fields of the natural-gradient step that NPG and TRPO share (one CG solve of F s = g)."""

    max_kl: float = 0.01
    """KL radius delta: TRPO's bound on mean KL(old || new); NPG's step size when ``step = "kl"``."""
    max_kl_schedule: str = "constant"
    """``constant``: every update uses ``max_kl``; ``linear``: the radius goes from ``max_kl`` at the
    first update to ``max_kl_final`` at the end of the run, so late updates refine the policy instead
    of moving it as far as early ones (the final policy then wanders less from update to update)."""
    max_kl_final: float = 0.0
    """The radius the ``linear`` schedule reaches at the end of the run (unused when ``constant``)."""
    cg_iters: int = 10
    """Conjugate-gradient iterations for the search direction."""
    cg_tol: float = 1e-10
    """Conjugate gradient stops early when the squared residual norm falls below this."""
    damping: float = 0.1
    """Added to the Fisher matrix (F + damping I) so CG stays well conditioned."""
    fvp_fraction: float = 1.0
    """Fraction of the batch used for Fisher-vector products (the TRPO paper uses 0.1)."""

    def validate(self) -> None:
        super().validate()
        _positive("algo.max_kl", self.max_kl)
        if self.max_kl_schedule not in MAX_KL_SCHEDULES:
            raise ConfigError(f"algo.max_kl_schedule must be one of {', '.join(MAX_KL_SCHEDULES)}, "
                              f"got {self.max_kl_schedule!r}")
        _non_negative("algo.max_kl_final", self.max_kl_final)
        _positive("algo.cg_iters", self.cg_iters, 1_000)
        _positive("algo.cg_tol", self.cg_tol)
        _non_negative("algo.damping", self.damping)
        if not 0.0 < self.fvp_fraction <= 1.0:
            raise ConfigError(f"algo.fvp_fraction must be in (0, 1], got {self.fvp_fraction}")


@dataclass
class TRPOConfig(NaturalGradientConfig):
    """TRPO: the natural-gradient direction, scaled to the KL radius, then a backtracking line search."""

    name: str = "trpo"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    backtrack_shrink: float = 0.8
    """Line search: each rejected step is multiplied by this factor."""
    backtrack_iters: int = 10
    """Line search: steps tried before the update is rejected."""

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.backtrack_shrink < 1.0:
            raise ConfigError(f"algo.backtrack_shrink must be in (0, 1), got {self.backtrack_shrink}")
        _positive("algo.backtrack_iters", self.backtrack_iters, 1_000)


@dataclass
class NPGConfig(NaturalGradientConfig):
    """Natural policy gradient (Kakade 2001): the same CG direction as TRPO, no line search."""

    name: str = "npg"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    step: str = "kl"
    """How far to move along s = F^-1 g: ``kl`` scales it to a quadratic-model KL of ``max_kl``
    (sqrt(2 max_kl / s^T F s) s); ``fixed`` moves ``step_size * s``."""
    step_size: float = 0.1
    """Learning rate of the ``fixed`` step (unused when ``step = "kl"``)."""

    def validate(self) -> None:
        super().validate()
        _choice("algo.step", self.step, ("kl", "fixed"))
        _positive("algo.step_size", self.step_size)


@dataclass
class REINFORCEConfig(AlgoConfig):
    """REINFORCE (Williams 1992): Monte-Carlo returns-to-go, one Adam step on the policy per batch."""

    name: str = "reinforce"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    gae_lambda: float = 1.0
    """Must be 1: REINFORCE weights by Monte-Carlo returns-to-go (use ``a2c`` for lambda-returns)."""
    baseline: bool = True
    """Must be true to train: the advantage is G_t - V(s_t) with the critic fitted by ``critic.fit``, and
    an episode cut by the batch boundary bootstraps its return from V there. (Pure Monte Carlo with no
    baseline would have to drop or guess the steps of episodes still running at the boundary.)
    ``false`` is still read, so runs saved with it can be evaluated, but training with it is refused."""
    lr: float = 1e-3
    """Adam learning rate of the policy."""
    max_grad_norm: float | None = None
    """Clip the policy gradient to this global norm; None disables."""

    def validate(self) -> None:
        super().validate()
        if self.gae_lambda != 1.0:
            raise ConfigError(
                f"algo.gae_lambda must be 1.0 for reinforce (Monte-Carlo returns), got {self.gae_lambda}; "
                "use algo.name=a2c for lambda-returns"
            )
        _positive("algo.lr", self.lr)
        if self.max_grad_norm is not None:
            _positive("algo.max_grad_norm", self.max_grad_norm)


@dataclass
class A2CConfig(AlgoConfig):
    """Advantage actor-critic (Mnih et al. 2016, synchronous): one gradient step per batch.

    n-step advantages are ``gae_lambda = 1`` with a short ``run.n_steps``;
    any other lambda gives GAE advantages.
    """

    name: str = "a2c"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    entropy_coef: float = 0.01
    """Weight of the mean policy entropy added to the objective."""
    lr: float = 7e-4
    """Adam learning rate of the policy (the critic uses ``critic.lr``)."""
    vf_coef: float = 0.5
    """Weight of the value loss in the joint loss (matters through the shared gradient clipping)."""
    max_grad_norm: float | None = 0.5
    """Clip the joint gradient of policy and critic to this global norm; None disables."""

    def validate(self) -> None:
        super().validate()
        _positive("algo.lr", self.lr)
        _positive("algo.vf_coef", self.vf_coef)
        if self.max_grad_norm is not None:
            _positive("algo.max_grad_norm", self.max_grad_norm)


@dataclass
class PPOConfig(AlgoConfig):
    """PPO with the clipped surrogate (Schulman et al. 2017): epochs of shuffled minibatches."""

    name: str = "ppo"
    """Which update rule: one of ``trustrl.algos.ALGORITHMS``."""
    lr: float = 3e-4
    """Adam learning rate of the policy (the critic uses ``critic.lr``)."""
    epochs: int = 10
    """Passes over the batch per update."""
    minibatch: int = 64
    """Minibatch size (transitions) for each gradient step."""
    clip_range: float = 0.2
    """epsilon: the ratio pi/pi_old is clipped to [1 - epsilon, 1 + epsilon] in the surrogate."""
    vf_coef: float = 0.5
    """Weight of the value loss in the joint loss (matters through the shared gradient clipping)."""
    value_clip: float | None = None
    """Clip V(s) to within this distance of its value at collection time in the value loss; None disables."""
    target_kl: float | None = None
    """Stop the update as soon as a minibatch's approximate KL(old || new) exceeds this; None disables."""
    max_grad_norm: float | None = 0.5
    """Clip the joint gradient of policy and critic to this global norm; None disables."""

    def validate(self) -> None:
        super().validate()
        _positive("algo.lr", self.lr)
        _positive("algo.epochs", self.epochs, 10_000)
        _positive("algo.minibatch", self.minibatch, MAX_BATCH)
        if not 0.0 < self.clip_range < 1.0:
            raise ConfigError(f"algo.clip_range must be in (0, 1), got {self.clip_range}")
        _positive("algo.vf_coef", self.vf_coef)
        for key in ("value_clip", "target_kl", "max_grad_norm"):
            if getattr(self, key) is not None:
                _positive(f"algo.{key}", getattr(self, key))


#: Algorithm name -> its config dataclass. Algorithms register here (and in ``trustrl.algos``).
ALGO_CONFIGS: dict[str, type[AlgoConfig]] = {
    "reinforce": REINFORCEConfig,
    "a2c": A2CConfig,
    "npg": NPGConfig,
    "trpo": TRPOConfig,
    "ppo": PPOConfig,
}


@dataclass
class RunConfig:
    total_steps: int = 100_000
    """Environment steps to train for (summed over all copies)."""
    n_steps: int = 256
    """Steps per copy per batch."""
    seed: int = 0
    """Seeds the envs, torch and numpy: same seed and config give the same metrics on CPU."""
    torch_threads: int = 1
    """Intra-op threads for torch; small MLPs run fastest on one."""
    overlap_critic: bool = True
    """Fit the critic on batch k in a background thread while batch k+1 is collected (TRPO, NPG).
    The math is unchanged -- GAE for batch k+1 waits for the fitted critic -- and so are metrics.csv
    and the checkpoints; only the wall-clock time shrinks."""
    checkpoint_every: int = 10
    """Write the ``last`` checkpoint every this many updates (and at the end)."""
    best_window: int = 20
    """Training episodes in the rolling ``episode_return_mean``; with ``eval_every = 0``, ``best`` is saved
    when the mean of this many recent episode returns beats the best so far."""
    device: str = "cpu"
    """Torch device for the networks."""
    video_every: int = 0
    """Film one deterministic evaluation episode every this many env steps into
    ``<run_dir>/videos/step-<N>.mp4`` (0: never). Needs a renderable env (MuJoCo: ``MUJOCO_GL=egl`` headless)."""
    eval_every: int = 0
    """Play ``eval_episodes`` deterministic episodes on a separate env at the start and after each batch that
    crosses a multiple of this many env steps (0: never). With it on, ``best`` is the checkpoint with the best
    evaluation; off, ``best`` follows the rolling mean of ``best_window`` training episodes."""
    eval_episodes: int = 10
    """Episodes per evaluation during training (reset seeds 2_000_000, 2_000_001, ... every time)."""
    workers: int = 1
    """Processes (or Ray actors) that simulate the env copies, each a contiguous share of them collecting whole
    fragments (1 with ``sampler = "local"``: this process steps them). The same seed gives the same metrics.csv
    whatever this is."""
    sampler: str = "local"
    """``local``: the workers are processes on this machine; ``ray``: Ray actors (``RAY_ADDRESS`` picks the cluster)."""
    worker_cpus: float = 1.0
    """CPUs each Ray actor reserves (``run.sampler = "ray"``); fractions share a CPU between actors."""
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

    def validate(self) -> None:
        _positive("run.total_steps", self.total_steps, MAX_STEPS)
        _positive("run.n_steps", self.n_steps, MAX_BATCH)
        check_seed("run.seed", self.seed)
        _positive("run.torch_threads", self.torch_threads, 1_024)
        _positive("run.checkpoint_every", self.checkpoint_every, MAX_STEPS)
        _check_device(self.device)
        _positive("run.best_window", self.best_window, 1_000_000)
        _non_negative("run.video_every", self.video_every, MAX_STEPS)
        _non_negative("run.eval_every", self.eval_every, MAX_STEPS)
        _positive("run.eval_episodes", self.eval_episodes, MAX_EPISODES)
        _positive("run.workers", self.workers, MAX_ENVS)
        if self.sampler in SAMPLING_SCHEMES and self.sampler != "single-path":
            raise ConfigError(f"run.sampler says where the env copies run ({', '.join(SAMPLERS)}); "
                              f"the {self.sampler} scheme is run.sampling = {self.sampler!r}")
        _choice("run.sampler", self.sampler, SAMPLERS)
        _choice("run.sampling", self.sampling, SAMPLING_SCHEMES)
        _choice("run.on_nonfinite", self.on_nonfinite, ("stop", "skip"))
        if not 0.0 <= self.worker_cpus <= 1024 or not math.isfinite(self.worker_cpus):
            raise ConfigError(f"run.worker_cpus must be between 0 and 1024, got {self.worker_cpus}")
        if self.wandb:
            if not self.wandb_project:
                raise ConfigError("run.wandb_project must not be empty with run.wandb = true")
            if importlib.util.find_spec("wandb") is None:
                raise ConfigError("run.wandb = true needs the wandb package: pip install 'trustrl[wandb]' "
                                  "(WANDB_MODE=offline writes the run to disk without an account)")


SAMPLERS = ("local", "ray")
SAMPLING_SCHEMES = ("single-path", "vine")


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

    def validate(self) -> None:
        _positive("vine.rollout_set", self.rollout_set, MAX_BATCH)
        if self.branches < 2:
            raise ConfigError(f"vine.branches must be >= 2 (one action per state gives no gradient), "
                              f"got {self.branches}")
        _positive("vine.branches", self.branches, 1_024)
        _positive("vine.horizon", self.horizon, 10**6)


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
    """Evaluate online (deterministic episodes in the env) every this many epochs, at the start, and when training
    stops early."""
    eval_episodes: int = 5
    """Episodes per online evaluation; ``best`` is the checkpoint with the best evaluation."""

    def validate(self) -> None:
        _positive("offline.epochs", self.epochs, 10**6)
        _non_negative("offline.minibatch", self.minibatch, MAX_BATCH)
        _positive("offline.max_kl_behaviour", self.max_kl_behaviour)
        _choice("offline.weights", self.weights, WEIGHTINGS)
        if not self.weight_clip > 1.0:
            raise ConfigError(f"offline.weight_clip must be > 1, got {self.weight_clip}")
        _non_negative("offline.critic_rounds", self.critic_rounds, 1_000)
        _non_negative("offline.bc_epochs", self.bc_epochs, 10**5)
        _positive("offline.bc_lr", self.bc_lr)
        _positive("offline.bc_minibatch", self.bc_minibatch, MAX_BATCH)
        _positive("offline.eval_every", self.eval_every, 10**6)
        _positive("offline.eval_episodes", self.eval_episodes, MAX_EPISODES)


@dataclass
class Config:
    name: str = "custom"
    """Label of the run (the preset name unless changed)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    algo: AlgoConfig = field(default_factory=TRPOConfig)
    run: RunConfig = field(default_factory=RunConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    vine: VineConfig = field(default_factory=VineConfig)

    @property
    def batch_size(self) -> int:
        """Transitions per update: steps per copy times copies."""
        return self.run.n_steps * self.env.n_envs

    def validate(self) -> "Config":
        for section in (self.env, self.policy, self.critic, self.algo, self.run, self.offline, self.vine):
            section.validate()
        if self.batch_size > MAX_BATCH:
            raise ConfigError(f"a batch of run.n_steps x env.n_envs = {self.run.n_steps} x {self.env.n_envs} = "
                              f"{self.batch_size} transitions is more than {MAX_BATCH:,} (memory); make one smaller")
        if self.run.workers > self.env.n_envs:
            raise ConfigError(f"run.workers = {self.run.workers} is more than env.n_envs = {self.env.n_envs}: "
                              "each worker steps at least one env copy")
        if self.run.async_sampling and (self.algo.name not in ("trpo", "npg") or self.offline.dataset):
            raise ConfigError("run.async_sampling needs online TRPO or NPG, whose surrogate corrects for the "
                              f"policy that acted one update earlier (not {self.algo.name}"
                              f"{' from a dataset' if self.offline.dataset else ''})")
        if self.run.sampling == "vine":
            self._validate_vine()
        if (self.run.workers > 1 or self.run.sampler == "ray") and self.env.vectorization != "sync":
            raise ConfigError("env.vectorization = 'async' gives each copy a process of its own; with run.workers "
                              "or run.sampler = 'ray' the workers step the copies, so leave it 'sync'")
        return self

    def _validate_vine(self) -> None:
        if self.algo.name not in ("trpo", "npg") or self.offline.dataset:
            raise ConfigError("run.sampling = 'vine' estimates the surrogate of a trust-region step: it needs "
                              f"online TRPO or NPG (not {self.algo.name}"
                              f"{' from a dataset' if self.offline.dataset else ''})")
        if self.run.async_sampling:
            raise ConfigError("run.sampling = 'vine' and run.async_sampling cannot be combined: the branches are "
                              "rolled out with the policy being updated")
        if self.env.vectorization != "sync":
            raise ConfigError("run.sampling = 'vine' restores env copies to branch from them; "
                              "env.vectorization must be 'sync'")
        per_copy = -(-self.vine.rollout_set // self.env.n_envs)
        if per_copy > self.run.n_steps:
            raise ConfigError(f"vine.rollout_set = {self.vine.rollout_set} needs {per_copy} states from each of "
                              f"the {self.env.n_envs} env copies, but a trunk has only run.n_steps = "
                              f"{self.run.n_steps} per copy")

    def to_dict(self) -> dict[str, Any]:
        return _toml_safe(dataclasses.asdict(self))

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


SECTIONS = {
    "env": EnvConfig,
    "policy": PolicyConfig,
    "critic": CriticConfig,
    "run": RunConfig,
    "offline": OfflineConfig,
    "vine": VineConfig,
}


def from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Build and validate a Config; unknown sections or keys are errors, not ignored."""
    data = dict(data)
    unknown = set(data) - {"name", "algo", *SECTIONS}
    if unknown:
        raise ConfigError(f"{source}: unknown section {_quoted(unknown)}; sections are {', '.join(['name', 'algo', *SECTIONS])}")
    cfg = Config(name=str(data.get("name", "custom")))
    for section, cls in SECTIONS.items():
        setattr(cfg, section, _build(cls, data.get(section, {}), section, source))
    algo = dict(data.get("algo", {}))
    algo_name = algo.get("name", "trpo")
    if algo_name not in ALGO_CONFIGS:
        raise ConfigError(f"{source}: unknown algorithm {algo_name!r}; choose from {', '.join(sorted(ALGO_CONFIGS))}")
    cfg.algo = _build(ALGO_CONFIGS[algo_name], algo, "algo", source)
    return cfg.validate()


def load(spec: str, overrides: list[str] | tuple[str, ...] = (), algo: str | None = None) -> Config:
    """Resolve a preset name, a TOML path or a gymnasium env id, apply overrides, validate.

    ``spec`` may be a registered env id (``CartPole-v1``): the config is then the
    ``<env>-<algo>`` preset made for that id if there is one, else the defaults
    for the env's action space (:func:`env_defaults`). ``algo`` picks the
    algorithm for an env id (default ``trpo``); for a preset or a file it must
    match the algorithm already there -- a preset's settings are tuned for its
    algorithm, so switching silently would hand one algorithm another's
    hyper-parameters -- and the error names the preset or command to use instead.
    """
    if algo is not None and algo not in ALGO_CONFIGS:
        raise ConfigError(f"unknown algorithm {algo!r}; choose from {', '.join(ALGO_CONFIGS)}")
    for item in overrides:  # --set env.imports=[...] registers the ids that ``spec`` may name
        key, _, raw = item.partition("=")
        if key.strip() == "env.imports":
            modules = _parse_value(raw)
            import_env_modules(modules if isinstance(modules, list) else [modules])
    data, source = _read_spec(spec, algo)
    if algo is not None:
        _check_algo(data, source, algo)
    for item in overrides:
        _apply_override(data, item)
    return from_dict(data, source)


def with_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), source: str = "config") -> Config:
    """A validated Config from the tables of a config with ``--set``-style overrides applied."""
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    for item in overrides:
        _apply_override(data, item)
    return from_dict(data, source)


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("trustrl.presets").iterdir() if p.name.endswith(".toml"))


def preset_data(name: str) -> dict[str, Any]:
    """The raw TOML tables of a bundled preset."""
    return tomllib.loads(resources.files("trustrl.presets").joinpath(f"{name}.toml").read_text())


def find_preset(env_id: str, algo: str) -> str | None:
    """The bundled single-path preset for exactly this env id and algorithm, if there is one (a vine
    preset, or a variant such as ``walker2d-trpo-notebook``, is asked for by its name: of several
    matches the shortest name wins)."""
    matches = []
    for name in preset_names():
        data = preset_data(name)
        if (data.get("env", {}).get("id") == env_id and data.get("algo", {}).get("name", "trpo") == algo
                and data.get("run", {}).get("sampling", "single-path") == "single-path"):
            matches.append(name)
    return min(matches, key=lambda name: (len(name), name)) if matches else None


#: Defaults beyond the dataclasses' for an env id with no preset, by action-space kind.
_ACTION_KIND_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "discrete": {},
    # continuous-control rewards vary in scale from env to env: scale them so V's targets are O(1)
    "box": {"env": {"norm_reward": True}},
}

#: ... and by action-space kind and algorithm. On Walker2d-v5 (benchmarks/README.md, section 7) a
#: trust region shrinking linearly from 0.03 to 0 with a starting action std of 0.61
#: (log_std_init -0.5) ended at or above 4294 on each of ten seeds (mean 5012 on seeds 0-4), where
#: from std 1 the same trust region gave 3704 on seeds 0-4 with one at 1888. It also beat a constant
#: max_kl 0.01 from std 1 on Hopper-v5 (3341 against 1858) and HalfCheetah-v5 (5286 against 1685),
#: 3 seeds each: the evidence for other Box envs is those three.
_ALGO_DEFAULTS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("box", "trpo"): {"policy": {"log_std_init": -0.5},
                      "algo": {"max_kl": 0.03, "max_kl_schedule": "linear", "max_kl_final": 0.0}},
}


def env_defaults(env_id: str, algo: str) -> tuple[dict[str, Any], str]:
    """A config for any registered env id: its ``<env>-<algo>`` preset, else sensible defaults.

    The defaults are the dataclass defaults (``algo``'s own config class for the
    algorithm) plus :data:`_ACTION_KIND_DEFAULTS` for a Discrete or Box action space and
    :data:`_ALGO_DEFAULTS` for that kind and algorithm.
    """
    preset = find_preset(env_id, algo)
    if preset is not None:
        return preset_data(preset), f"preset {preset}"
    kind = _action_kind(env_id)
    data: dict[str, Any] = {"name": f"{env_id}-{algo}", "env": {"id": env_id}, "algo": {"name": algo}}
    for defaults in (_ACTION_KIND_DEFAULTS[kind], _ALGO_DEFAULTS.get((kind, algo), {})):
        for section, values in defaults.items():
            data.setdefault(section, {}).update(values)
    return data, f"{env_id} with {algo} defaults"


def _action_kind(env_id: str) -> str:
    import gymnasium as gym

    try:
        env = gym.make(registered_id(env_id))
    except ConfigError:
        raise
    except Exception as exc:  # missing extras (mujoco, box2d), bad kwargs
        raise ConfigError(f"cannot make environment {env_id!r}: {exc}") from None
    try:
        return "discrete" if isinstance(env.action_space, gym.spaces.Discrete) else "box"
    finally:
        env.close()


def _check_algo(data: dict[str, Any], source: str, algo: str) -> None:
    current = data.get("algo", {}).get("name", "trpo")
    if current == algo:
        return
    env_id = data.get("env", {}).get("id", EnvConfig.id)
    preset = find_preset(env_id, algo)
    instead = f"preset {preset}" if preset else f"`trustrl train {env_id} --algo {algo}`"
    raise ConfigError(
        f"{source} is a {current} config; it cannot be switched to {algo} "
        f"(its settings are tuned for {current}); use {instead}"
    )


def _is_env_id(spec: str) -> bool:
    """A registered id, or ``module:Id`` (the module is imported to find out)."""
    import gymnasium as gym

    if ":" in spec:
        check_env_id(spec)  # an import that fails, or an id the module did not register, is named here
        return True
    return spec in gym.registry


def _read_spec(spec: str, algo: str | None = None) -> tuple[dict[str, Any], str]:
    path = Path(spec)
    if spec.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file {spec!r} does not exist")
        try:
            return tomllib.loads(path.read_text(encoding="utf-8")), str(path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{spec}: not valid TOML ({exc})") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{spec}: not a UTF-8 text file (byte {exc.start}); TOML files are UTF-8") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {spec}: {exc.strerror or exc}") from None
    names = preset_names()
    if spec in names:
        return preset_data(spec), f"preset {spec}"
    if _is_env_id(spec):
        return env_defaults(spec, algo or "trpo")
    hint = difflib.get_close_matches(spec, names, n=3)
    also = f"; did you mean {', '.join(hint)}?" if hint else ""
    raise ConfigError(
        f"unknown preset {spec!r}{also} (presets: {', '.join(names)}; "
        "or pass a .toml file, a gymnasium env id such as CartPole-v1, or an env of your own as module:Id)"
    )


# Where the env copies run, never what they compute: a resumed run may change these.
LAYOUT_KEYS = ("run.workers", "run.sampler", "run.worker_cpus")


def with_layout(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A config dict with ``overrides`` of :data:`LAYOUT_KEYS` only applied (anything else is refused)."""
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in LAYOUT_KEYS:
            raise ConfigError(f"a resumed run keeps its config; --set may change only where it runs "
                              f"({', '.join(LAYOUT_KEYS)}), not {key!r}")
        _apply_override(data, item)
    return data


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    parts = key.strip().split(".")
    if len(parts) == 1 and parts[0] == "name":
        data["name"] = raw
        return
    if len(parts) != 2:
        raise ConfigError(f"--set key must be section.key (e.g. algo.max_kl), got {key!r}")
    section, name = parts
    data.setdefault(section, {})[name] = _parse_value(raw)


def parse_toml_value(raw: str) -> Any:
    """A value as ``--set`` reads it: TOML syntax, else the text as a string."""
    return _parse_value(raw)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """One TOML value on one line (tables inline); None as the string ``"none"``, as config files write it."""
    if value is None:
        return '"none"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[len("v = "):].strip()


def toml_key(name: str) -> str:
    return name if _BARE_KEY.match(name) else toml_value(name)


def _parse_value(raw: str) -> Any:
    """TOML syntax for a value (``0.02``, ``true``, ``[64, 64]``); anything else is a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _build(cls: type, values: dict[str, Any], section: str, source: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [{section}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            also = f"; did you mean {section}.{hint[0]}?" if hint else ""
            raise ConfigError(f"{source}: unknown key {section}.{key}{also}")
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}", source)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check a value against its field's type, accepting ints for floats and lists for tuples."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, source)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], key, source) for v in value)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a table, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {key} must be finite, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
        return value
    return value


def _check_device(device: str) -> None:
    """A device torch knows and this machine has, checked before anything is written."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"run.device {device!r} is not a torch device (e.g. cpu, cuda, cuda:0)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device {device!r}: this machine has no CUDA device; use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"run.device {device!r}: trustrl runs on cpu or cuda")


#: Ids of envs made by a Python function (``trustrl.train(cfg, env=make)``) live in this gymnasium namespace.
FACTORY_NAMESPACE = "trustrl-factory"

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def import_env_modules(modules: Iterable[Any]) -> None:
    """Import each module (dotted name), so the env ids it registers with gymnasium exist."""
    for name in modules:
        if not isinstance(name, str) or not _MODULE_NAME.match(name):
            raise ConfigError(f"env.imports: {name!r} is not a module name (e.g. mypkg.envs)")
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 -- the module's own error, whatever it is, named in one line
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            hint = "; is its folder on PYTHONPATH?" if isinstance(exc, ModuleNotFoundError) else ""
            raise EnvUnavailableError(f"cannot import module {name!r} for the env: {type(exc).__name__}"
                                      f"{': ' + detail if detail else ''}{hint}") from None


def registered_id(env_id: str, imports: Iterable[str] = ()) -> str:
    """The gymnasium id to make: ``imports`` and the module of a ``module:Id`` imported first, the module
    prefix dropped. Fails early, with suggestions, on an id gymnasium does not know."""
    import gymnasium as gym

    import_env_modules(imports)
    module, sep, bare = env_id.rpartition(":")
    if sep:
        if not module:
            raise ConfigError(f"env id {env_id!r}: nothing before ':' (the form is module:Id, e.g. mypkg.envs:Line-v0)")
        import_env_modules([module])
    if bare in gym.registry:
        return bare
    if bare.startswith(FACTORY_NAMESPACE + "/"):
        raise EnvUnavailableError(f"the env {bare!r} was made by a Python function (trustrl.train(..., env=make_env)); "
                          "pass the same function again (trustrl.load(run, env=make_env)), or evaluate in a "
                          "registered env with --env ID")
    where = f" (module {module!r} was imported but did not register it)" if sep else ""
    hint = difflib.get_close_matches(bare, list(gym.registry), n=3)
    also = f"; did you mean {', '.join(hint)}?" if hint else ""
    custom = "" if sep else "; an env of your own: module:Id or env.imports"
    raise EnvUnavailableError(f"unknown environment id {bare!r}{where}{also}{custom}")


def check_env_id(env_id: str, imports: Iterable[str] = ()) -> None:
    """Fail early, with suggestions, on an id gymnasium does not know (after importing what it needs)."""
    registered_id(env_id, imports)


#: Upper bounds where memory or time would explode long before a run could finish (checked before anything is
#: written): env copies, transitions in one batch, env steps of a run, episodes of one evaluation, layer widths.
MAX_ENVS = 1_024
MAX_BATCH = 10_000_000
MAX_STEPS = 10**13
MAX_EPISODES = 100_000
MAX_WIDTH = 16_384
MAX_LAYERS = 64
MAX_WEIGHTS = 2**28  # weights between hidden layers: 1 GiB of float32
#: Seeds are 32-bit (what numpy's legacy seeding, gymnasium and torch all take); per-copy and per-episode
#: seeds count up from a run's seed, so the bound leaves room for them.
MAX_SEED = 2**32 - 1


def check_seed(key: str, seed: int, count: int = 1) -> None:
    """``seed`` .. ``seed + count - 1`` are all valid seeds."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED - max(count - 1, 0):
        raise ConfigError(f"{key} must be an integer between 0 and {MAX_SEED - max(count - 1, 0)}, got {seed}")


def check_count(key: str, value: int, at_most: int) -> None:
    """A count from the command line or the API: an integer from 1 to ``at_most``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= at_most:
        raise ConfigError(f"{key} must be an integer from 1 to {at_most:,}, got {value}")


def names_file(value: Any) -> bool:
    """A value that points at a file: a string with a path separator, a home-relative path, or an existing file."""
    if not isinstance(value, str):
        return False
    return "/" in value or "\\" in value or value.startswith("~") or Path(value).exists()


def accept_env_kwargs(data: dict[str, Any], given: dict[str, Any], source: str) -> dict[str, Any]:
    """The config tables ``data`` of a saved run with its env kwargs made safe to use here.

    A saved config is data from wherever the run came from: an ``env.kwargs`` value that names a file
    (``xml_file = "/etc/passwd"``) would make the env read it. Such a kwarg is used only if the user passes
    it again in ``given`` (the user's own values override the saved ones).
    """
    env = data.get("env") if isinstance(data, dict) else None
    kwargs = env.get("kwargs") if isinstance(env, dict) else None
    if not isinstance(kwargs, dict):
        if given:
            return {**data, "env": {**(env if isinstance(env, dict) else {}), "kwargs": dict(given)}}
        return data
    for key, value in kwargs.items():
        if names_file(value) and key not in given:
            raise ConfigError(f"{source}: env.kwargs.{key} names a file ({str(value)[:80]!r}); a saved run chooses no "
                              f"file for the env to read: pass it yourself to use it (--env-kwarg {key}=PATH)")
    return {**data, "env": {**env, "kwargs": {**kwargs, **given}}}


def parse_env_kwargs(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["xml_file=/path/model.xml", "ctrl_cost_weight=0.1"]`` -> a dict (values in TOML syntax, else strings)."""
    kwargs = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--env-kwarg expects KEY=VALUE, got {item!r}")
        kwargs[key.strip()] = _parse_value(raw)
    return kwargs


def _positive(key: str, value: float, at_most: float | None = None) -> None:
    if not value > 0:
        raise ConfigError(f"{key} must be > 0, got {value}")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{key} must be at most {at_most:,}, got {value:,}")


def _non_negative(key: str, value: float, at_most: float | None = None) -> None:
    if not value >= 0:
        raise ConfigError(f"{key} must be >= 0, got {value}")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{key} must be at most {at_most:,}, got {value:,}")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def _hidden(key: str, sizes: tuple[int, ...]) -> None:
    if not sizes or any(s <= 0 for s in sizes):
        raise ConfigError(f"{key} must be a non-empty list of positive widths, got {list(sizes)}")
    if len(sizes) > MAX_LAYERS or max(sizes) > MAX_WIDTH or sum(a * b for a, b in zip(sizes, sizes[1:])) > MAX_WEIGHTS:
        raise ConfigError(f"{key} must have at most {MAX_LAYERS} layers of at most {MAX_WIDTH:,} units and "
                          f"{MAX_WEIGHTS:,} weights between them, got {list(sizes)}")


def _quoted(names: set[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names))


def _toml_safe(value: Any) -> Any:
    """TOML has no null: an optional field set to None is written as the string ``"none"``,
    which reads back as None (so ``max_grad_norm = none`` survives a round trip even
    where the default is a number)."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    if value is None:
        return "none"
    return value
