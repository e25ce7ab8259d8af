"""Offline TRPO: TRPO's objective written for a behaviour policy beta, on a fixed dataset (reference notebook 000).

Schulman et al. 2015, eq. 14, with the sampling distribution q = beta:

    maximise  L(pi) = E_{s, a ~ beta}[ w(s, a) * A_beta(s, a) ],  w = pi(a|s) / beta(a|s)
    s.t.      mean KL(beta || pi) <= offline.max_kl_behaviour     (stay where the data says something)
              mean KL(pi_old || pi_new) <= algo.max_kl            (per update, as online TRPO)

- :meth:`OfflineTRPO.prepare` (once, before anything moves): the policy starts
  from a maximum-likelihood fit of the data (behaviour cloning), so it starts
  inside the trust region; beta is the distribution recorded with the data, or
  that fit when the dataset has none (the log says so); the critic is fitted to
  the dataset's lambda-returns for ``offline.critic_rounds`` rounds, each
  recomputing its targets.
- A_beta: GAE over the dataset's episodes with that critic (the run loop
  computes it; the data and the critic no longer change).
- Box actions: a dataset trustrl collected holds the draws before clipping (and their log-probabilities),
  which training uses. Another tool's dataset holds only executed actions: a coordinate exactly on a bound
  was clipped there, and its likelihood is the Gaussian's tail mass beyond the bound, for pi and beta alike
  (:func:`~trustrl.distributions.censored_log_prob`; the maximum-likelihood fit is censored the same way).
- Importance weights: ``self-normalised`` by default -- w / mean(w) over the
  minibatch (weighted importance sampling: biased by O(1/n), but bounded, and
  its gradient subtracts the surrogate's value as a baseline); or ``clipped``
  at ``offline.weight_clip``. ``ess_fraction`` in metrics.csv is the effective
  sample size (sum w)^2 / sum w^2 over n.
- Each step is :func:`~trustrl.trust_region.trust_region_step`, the one TRPO
  calls, with this file's closures: the Fisher matrix of KL(pi_old || pi), and
  a line search that accepts the first fraction inside *both* trust regions
  with a positive surrogate improvement.
- An epoch takes one step per minibatch (``offline.minibatch``; 0 is the whole
  dataset). A full-batch step that the line search rejects leaves everything
  as it was, so every later epoch would repeat it: the algorithm is then
  ``finished`` and the run stops early.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from trustrl.advantages import compute_advantages
from trustrl.algos.base import Algorithm, make_fitter
from trustrl.algos.natural import bound_holds, fisher_generator, fvp_rows
from trustrl.algos.trpo import TRPOConfig, step_stats
from trustrl.batch import Batch
from trustrl.distributions import Distribution, censored_log_prob
from trustrl.nets import Policy, ValueNet, distribution_of, keep_in_bounds
from trustrl.trust_region import scheduled_max_kl, trust_region_step

if TYPE_CHECKING:
    from trustrl.config.sections import CriticConfig, OfflineConfig

STEP_KEYS = (
    "surrogate_improvement", "kl", "line_search_accepted", "line_search_backtracks", "step_fraction",
    "ess_fraction", "weight_max", "grad_norm", "cg_iterations",
)  # fmt: skip


def importance_weights(log_ratio: Tensor, scheme: str, clip: float) -> Tensor:
    """pi/beta from ``log pi - log beta``: ``self-normalised`` (w / mean w) or ``clipped`` (min(w, clip))."""
    w = log_ratio.clamp(-30.0, 30.0).exp()  # finite even for actions one policy all but excludes
    if scheme == "clipped":
        return w.clamp(max=clip)
    return w / w.mean()


def censoring_bounds(space: gym.Space, device: str = "cpu") -> tuple[Tensor, Tensor] | None:
    """A Box space's bounds, where actions on them were clipped there; None for other spaces or no finite bound."""
    if not isinstance(space, gym.spaces.Box) or not np.isfinite(np.r_[space.low, space.high]).any():
        return None
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, np.float32).reshape(-1), device=device)  # noqa: E731
    return as_tensor(space.low), as_tensor(space.high)


class OfflineTRPO(Algorithm):
    def __init__(
        self,
        policy: Policy,
        critic: ValueNet,
        cfg: TRPOConfig,
        critic_cfg: CriticConfig,
        generator: torch.Generator,
        offline: OfflineConfig,
        behaviour_return: float = float("nan"),
        censor_at: tuple[Tensor, Tensor] | None = None,
    ):
        self.policy = policy
        self.critic = critic
        self.cfg = cfg
        self.offline = offline
        self.generator = generator
        self.critic_fitter = make_fitter(critic, critic_cfg, generator)
        self.fvp_generator = fisher_generator(generator)  # the Fisher's rows: a stream of their own, as online
        self.beta_source = ""  # "dataset" or "maximum likelihood"
        self.estimated_beta: dict[str, Tensor] | None = None  # beta's parameters when estimated, per valid step
        self.estimated_log_probs: Tensor | None = None
        self.critic_stats: dict[str, float] = {}
        self.behaviour_return = behaviour_return  # the dataset's mean episode return, for metrics.csv
        self.censor_at = censor_at  # (low, high): the dataset's Box actions were clipped to these, no draws kept

    def log_prob(self, dist: Distribution, actions: Tensor) -> Tensor:
        """log pi(a|s) of the dataset's actions: censored at the bounds when they are executed (clipped) ones."""
        if self.censor_at is None:
            return dist.log_prob(actions)
        return censored_log_prob(dist, actions, *self.censor_at)

    def _on_bound(self, actions: Tensor) -> int:
        """Steps with a coordinate on a finite bound: clipped actions, when the dataset keeps no draws."""
        if self.censor_at is None:
            return 0
        low, high = self.censor_at
        return int(((actions == low) | (actions == high)).reshape(len(actions), -1).any(-1).sum())

    def prepare(self, batch: Batch) -> list[str]:
        obs, actions = batch.flat("obs"), batch.flat("actions")
        notes = []
        nll = self._fit_max_likelihood(obs, actions)
        with torch.no_grad():
            fitted = self.policy(obs)
        self.beta_source = "dataset" if batch.behaviour_log_probs is not None else "maximum likelihood"
        if batch.behaviour_log_probs is None:
            self.estimated_log_probs = self.log_prob(fitted, actions).detach()
            notes.append("the dataset has no behaviour log-probabilities: estimated beta by maximum likelihood "
                         f"({self.offline.bc_epochs} epochs, mean negative log-likelihood {nll:.3f})")
        if batch.behaviour_params is None:
            self.estimated_beta = {k: v.detach().clone() for k, v in fitted.params().items()}
            if batch.behaviour_log_probs is not None:
                notes.append("the dataset has no behaviour distribution parameters: KL(beta || pi) uses beta's "
                             "maximum-likelihood estimate")
        clipped = self._on_bound(actions)
        if clipped:
            if batch.behaviour_log_probs is not None:  # densities at a bound: recomputed as tail masses
                with torch.no_grad():
                    self.estimated_log_probs = self.log_prob(self._beta(batch), actions)
            notes.append(f"{clipped} of {len(actions)} actions have a coordinate on a bound of the action space "
                         "and the dataset keeps no draws before clipping: there, log pi and log beta are the "
                         "Gaussian's tail mass beyond the bound (censored)")
        with torch.no_grad():
            start_kl = float(self._beta(batch).kl(fitted).mean())
        if start_kl > self.offline.max_kl_behaviour:
            notes.append(f"the maximum-likelihood start is already at KL(beta || pi) {start_kl:.3g} from beta, beyond "
                         f"offline.max_kl_behaviour {self.offline.max_kl_behaviour:g}: only a step back inside it can be "
                         "accepted (raise it above the start's KL to let the policy move)")
        for _ in range(self.offline.critic_rounds):
            compute_advantages(batch, self.critic, self.cfg.gamma, self.cfg.gae_lambda, normalize=False)
            self.critic_stats = self.critic_fitter.fit(obs, batch.flat("returns"))
        self.critic_stats.pop("time_critic_s", None)
        return notes

    def update(self, batch: Batch) -> dict[str, float]:
        obs, actions, advantages = batch.flat("obs"), batch.flat("actions"), batch.flat("advantages")
        beta_log_probs = (batch.flat("behaviour_log_probs") if self.estimated_log_probs is None
                          else self.estimated_log_probs)
        beta = self._beta(batch)
        n = len(obs)
        minibatch = self.offline.minibatch or n
        order = torch.randperm(n, generator=self.generator) if minibatch < n else torch.arange(n)
        steps = []
        for lo in range(0, n, minibatch):
            idx = order[lo : lo + minibatch]
            steps.append(self._step(obs[idx], actions[idx], advantages[idx], beta_log_probs[idx], beta[idx]))
        # a rejected full-batch step leaves everything as it was: every later epoch would repeat it
        self.finished = minibatch >= n and steps[-1]["line_search_accepted"] == 0.0
        with torch.no_grad():
            dist = self.policy(obs)
            kl_behaviour = float(beta.kl(dist).mean())
            entropy = float(dist.entropy().mean())
        return {
            **{k: sum(s[k] for s in steps) / len(steps) for k in STEP_KEYS},
            "kl_behaviour": kl_behaviour,
            "entropy": entropy,
            "behaviour_return_mean": self.behaviour_return,
            "value_loss": self.critic_stats.get("value_loss", float("nan")),
            "explained_variance": self.critic_stats.get("explained_variance", float("nan")),
        }

    def _beta(self, batch: Batch) -> Distribution:
        if self.estimated_beta is not None:
            return distribution_of(self.policy, self.estimated_beta)
        return distribution_of(self.policy, {k: v.reshape(-1, v.shape[-1])[batch.valid.reshape(-1)]
                                             for k, v in batch.behaviour_params.items()})

    def _step(self, obs, actions, advantages, beta_log_probs, beta: Distribution) -> dict[str, float]:
        """One trust-region step on the importance-weighted surrogate, inside both trust regions.

        Fisher-vector products use ``algo.fvp_samples`` random rows of the (mini)batch (or ``algo.fvp_fraction``
        of it), as online TRPO's do; by default the whole of it.
        """
        cfg, offline = self.cfg, self.offline
        max_kl = scheduled_max_kl(cfg.max_kl, cfg.max_kl_final, cfg.max_kl_schedule, self.progress)
        with torch.no_grad():
            old = self.policy(obs).detach()

        def surrogate(dist: Distribution) -> Tensor:
            w = importance_weights(self.log_prob(dist, actions) - beta_log_probs, offline.weights, offline.weight_clip)
            return (w * advantages).mean() + cfg.entropy_coef * dist.entropy().mean()

        def start() -> tuple[Tensor, Tensor]:
            dist = self.policy(obs)
            rows = fvp_rows(len(obs), cfg.fvp_fraction, cfg.fvp_samples, self.fvp_generator)
            if isinstance(rows, slice):  # the whole batch: old as it is (indexing re-normalises logits)
                return surrogate(dist), old.kl(dist).mean()
            return surrogate(dist), old[rows].kl(self.policy(obs[rows])).mean()

        def both_regions() -> tuple[Tensor, Tensor]:
            """The surrogate, and both trust regions as one number: <= 1 exactly when both KLs are within
            their radius."""
            dist = self.policy(obs)
            regions = torch.maximum(old.kl(dist).mean() / max_kl, beta.kl(dist).mean() / offline.max_kl_behaviour)
            return surrogate(dist), regions

        step = trust_region_step(
            self.policy.parameters(), start, both_regions, max_kl,
            damping=cfg.damping, cg_iters=cfg.cg_iters, cg_tol=cfg.cg_tol,
            shrink=cfg.backtrack_shrink, max_backtracks=cfg.backtrack_iters, constraint_limit=1.0,
            held=bound_holds(self.policy),
        )  # fmt: skip
        keep_in_bounds(self.policy)  # after every step: the next minibatch starts with log-std inside its bounds
        with torch.no_grad():
            dist = self.policy(obs)
            w = (self.log_prob(dist, actions) - beta_log_probs).clamp(-30.0, 30.0).exp()
            kl = float(old.kl(dist).mean())
        return {
            **step_stats(step),
            "kl": kl,
            "ess_fraction": float(w.sum() ** 2 / (w.pow(2).sum() * len(w))),
            "weight_max": float(w.max()),
        }

    def _fit_max_likelihood(self, obs: Tensor, actions: Tensor) -> float:
        """Behaviour cloning: Adam on the mean negative log-likelihood of the dataset's actions."""
        optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.offline.bc_lr)
        n = len(obs)
        for _ in range(self.offline.bc_epochs):
            order = torch.randperm(n, generator=self.generator)
            for lo in range(0, n, self.offline.bc_minibatch):
                idx = order[lo : lo + self.offline.bc_minibatch]
                loss = -self.log_prob(self.policy(obs[idx]), actions[idx]).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        keep_in_bounds(self.policy)  # Adam knows no bound: the first trust-region step starts inside them
        with torch.no_grad():
            return float(-self.log_prob(self.policy(obs), actions).mean())

    def info(self) -> dict:
        return {"behaviour_source": self.beta_source}

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "beta_source": self.beta_source,
            "estimated_beta": self.estimated_beta,
            "estimated_log_probs": self.estimated_log_probs,
            "critic_stats": self.critic_stats,
            "finished": self.finished,
            "fvp_generator": self.fvp_generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.beta_source = state["beta_source"]
        self.estimated_beta = state["estimated_beta"]
        self.estimated_log_probs = state["estimated_log_probs"]
        self.critic_stats = dict(state["critic_stats"])
        self.finished = bool(state["finished"])
        if "fvp_generator" in state:  # a run saved before offline TRPO sub-sampled the Fisher starts it afresh
            self.fvp_generator.set_state(state["fvp_generator"])

