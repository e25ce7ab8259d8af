"""The log-std bound in the natural-gradient step: coordinates a bound holds against the gradient are left out
of the gradient and the Fisher matrix (TRPO, NPG, offline TRPO), and offline TRPO projects after every step.

The batches: a 2-d Gaussian policy whose advantages reward a wider spread (``z**2 - 1`` along a dimension) and
a move of the mean (``0.3 z``), with the log-std of dimension 0 (case "upper") or of both dimensions
(case "both") at its upper bound 0. Left in, the held coordinates take full weight in the Fisher matrix while
the distribution cannot move along them: on "both", the quadratic model of the unmasked full step predicts a
KL of 0.0095 where the step's true KL is 0.0003 (surrogate improvement 0.012); masked, the step's true KL is
0.0086 and its improvement 0.076. On "upper" (dimension 1 free, its spread rewarded narrower) the line search
reaches KL 0.0012 and improvement 0.026 unmasked, 0.0064 and 0.060 masked.
"""

import copy
import math

import torch
from fisher import mean_kl_hessian
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from trustrl.algos import NPG, TRPO, OfflineTRPO
from trustrl.algos.natural import bound_holds, policy_objective
from trustrl.batch import Batch
from trustrl.config import CriticConfig, NPGConfig, OfflineConfig, PolicyConfig, TRPOConfig
from trustrl.nets import GaussianPolicy, ValueNet, held_at_bound
from trustrl.trust_region import fisher_vector_product, kl_scaled_step, natural_direction, trust_region_step

HIGH = 0.0


def _problem(log_std, advantage, n=4096, seed=0):
    """A policy with its log-std set to ``log_std`` (bounds [-5, 0]), actions drawn from it, their advantages."""
    torch.manual_seed(seed)
    cfg = PolicyConfig(hidden=(8,), out_gain=1.0, log_std_init=HIGH, log_std_min=-5.0, log_std_max=HIGH)
    policy = GaussianPolicy(3, 2, cfg).double()
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor(log_std, dtype=torch.float64))
        obs = torch.randn(n, 3, dtype=torch.float64)
        dist = policy(obs)
        z = torch.randn(n, 2, dtype=torch.float64)
        actions = dist.mean + dist.std * z
        log_probs = dist.log_prob(actions)
    return policy, obs, actions, log_probs, advantage(z)


def _both():
    return _problem([HIGH, HIGH], lambda z: (z[:, 0] ** 2 - 1) + (z[:, 1] ** 2 - 1) + 0.3 * (z[:, 0] + z[:, 1]))


def _upper():
    return _problem([HIGH, -1.0], lambda z: (z[:, 0] ** 2 - 1) + 0.3 * (z[:, 0] + z[:, 1]) - 0.3 * (z[:, 1] ** 2 - 1))


def _batch(obs, actions, log_probs, advantages) -> Batch:
    n = len(obs)
    batch = Batch(obs=obs[:, None], actions=actions[:, None], log_probs=log_probs[:, None],
                  rewards=torch.zeros(n, 1, dtype=torch.float64), terminated=torch.zeros(n, 1, dtype=torch.bool),
                  truncated=torch.zeros(n, 1, dtype=torch.bool), last_obs=obs[:1], final_obs=obs[:0],
                  final_index=torch.zeros(0, 2, dtype=torch.long))
    batch.advantages = advantages[:, None]
    return batch


def _unmasked_full_step(policy, obs, actions, advantages) -> tuple[float, float, float]:
    """(quadratic-model KL, true KL, surrogate improvement) of the full step with the held coordinates left in."""
    policy = copy.deepcopy(policy)
    cfg = TRPOConfig()
    objective = policy_objective(policy, obs, actions, advantages, cfg, torch.Generator())
    params = list(policy.parameters())
    _, direction, curvature, _, base = natural_direction(params, objective.start, cfg.damping, cfg.cg_iters, cfg.cg_tol)
    step = kl_scaled_step(direction, curvature, cfg.max_kl)
    with torch.no_grad():
        old = policy(obs)
    model = 0.5 * float(step @ fisher_vector_product(old.kl(policy(obs)).mean(), params, 0.0)(step))
    with torch.no_grad():
        vector_to_parameters(parameters_to_vector(params) + step, params)
        surrogate, kl = objective.evaluate()
    return model, float(kl), float(surrogate) - base


def _trpo(policy) -> TRPO:
    return TRPO(policy, ValueNet(3, CriticConfig()).double(), TRPOConfig(), CriticConfig(), torch.Generator())


def test_held_at_bound_marks_log_std_pushed_outward_only():
    policy, *_ = _upper()
    n = sum(p.numel() for p in policy.parameters())
    ascent = torch.zeros(n, dtype=torch.float64)
    assert held_at_bound(policy, ascent) is None  # no push
    ascent[:2] = torch.tensor([1.0, 1.0])  # log_std is the module's own parameter, first: both pushed up
    mask = held_at_bound(policy, ascent)
    assert mask.tolist() == [True, False] + [False] * (n - 2)  # only dimension 0 sits at the upper bound
    ascent[:2] = torch.tensor([-1.0, -1.0])  # pushed back inside: free
    assert held_at_bound(policy, ascent) is None
    with torch.no_grad():
        policy.log_std.fill_(-5.0)  # at the lower bound, pushed down: held
    assert held_at_bound(policy, ascent)[:2].tolist() == [True, True]


def test_at_the_bound_the_trpo_step_spends_its_trust_region_where_the_policy_can_move():
    policy, obs, actions, log_probs, advantages = _both()
    model, true_kl, improvement = _unmasked_full_step(policy, obs, actions, advantages)
    assert math.isclose(model, 0.0095, abs_tol=5e-4) and true_kl < 0.0005  # the problem: a KL budget not used
    stats = _trpo(policy).update_policy(_batch(obs, actions, log_probs, advantages))
    assert torch.equal(policy.log_std.detach(), torch.tensor([HIGH, HIGH], dtype=torch.float64))  # never pushed out
    assert stats["line_search_accepted"] == 1.0 and stats["step_fraction"] == 1.0
    assert 0.008 <= stats["kl"] <= 0.01 and stats["surrogate_improvement"] > 5 * improvement  # 0.0086, 0.076


def test_with_one_dimension_held_the_other_moves_and_the_step_gains():
    policy, obs, actions, log_probs, advantages = _upper()
    unmasked = copy.deepcopy(policy)
    objective = policy_objective(unmasked, obs, actions, advantages, TRPOConfig(), torch.Generator())
    cfg = TRPOConfig()
    before = trust_region_step(unmasked.parameters(), objective.start, objective.evaluate, cfg.max_kl,
                               damping=cfg.damping, cg_iters=cfg.cg_iters, cg_tol=cfg.cg_tol,
                               shrink=cfg.backtrack_shrink, max_backtracks=cfg.backtrack_iters).search
    stats = _trpo(policy).update_policy(_batch(obs, actions, log_probs, advantages))
    assert policy.log_std[0] == HIGH and policy.log_std[1] < -1.0  # held; free, and narrowed as rewarded
    assert before.kl < 0.002 and stats["kl"] > 3 * before.kl  # 0.0012 -> 0.0064
    assert stats["surrogate_improvement"] > 2 * before.improvement  # 0.026 -> 0.060


def test_the_masked_direction_solves_the_fisher_system_of_the_free_coordinates():
    """Against an explicit Hessian of the mean KL, restricted to the coordinates the bound does not hold."""
    policy, obs, actions, _, advantages = _upper()
    obs, actions, advantages = obs[:256], actions[:256], advantages[:256]
    cfg = TRPOConfig()
    objective = policy_objective(policy, obs, actions, advantages, cfg, torch.Generator())
    g, s, _, _, _ = natural_direction(list(policy.parameters()), objective.start, cfg.damping, 500, 1e-24,
                                      bound_holds(policy))
    fisher = mean_kl_hessian(policy, obs, cfg.damping)
    free = torch.ones(len(fisher), dtype=torch.bool)
    free[0] = False  # log_std[0]
    assert g[0] == 0.0 and s[0] == 0.0
    expected = torch.linalg.solve(fisher[free][:, free], g[free])
    torch.testing.assert_close(s[free], expected, rtol=1e-6, atol=1e-9)


def test_npg_leaves_the_held_coordinates_out_too():
    policy, obs, actions, log_probs, advantages = _both()
    npg = NPG(policy, ValueNet(3, CriticConfig()).double(), NPGConfig(), CriticConfig(), torch.Generator())
    stats = npg.update_policy(_batch(obs, actions, log_probs, advantages))
    assert torch.equal(policy.log_std.detach(), torch.tensor([HIGH, HIGH], dtype=torch.float64))
    assert 0.008 <= stats["kl"] <= 0.011  # the quadratic model's 0.01, nearly all of it spent


def test_offline_trpo_projects_log_std_into_its_bounds_after_every_step(monkeypatch):
    """Minibatch steps each start inside the bounds, even when a step crosses one from just inside."""
    policy, obs, actions, log_probs, advantages = _both()
    with torch.no_grad():
        policy.log_std.fill_(HIGH - 1e-3)  # inside, so not held: the first step crosses the bound
    algo = OfflineTRPO(policy, ValueNet(3, CriticConfig()).double(), TRPOConfig(), CriticConfig(), torch.Generator(),
                       OfflineConfig(minibatch=1024))
    batch = _batch(obs, actions, log_probs, advantages)
    batch.behaviour_log_probs = log_probs[:, None]
    batch.valid = torch.ones(len(obs), 1, dtype=torch.bool)
    with torch.no_grad():
        dist = policy(obs)
    batch.behaviour_params = {"mean": dist.mean[:, None], "log_std": dist.log_std[:, None]}
    starts = []
    step = OfflineTRPO._step

    def recording(self, *args):
        starts.append(self.policy.log_std.detach().clone())
        return step(self, *args)

    monkeypatch.setattr(OfflineTRPO, "_step", recording)
    algo.update(batch)
    assert len(starts) == 4 and starts[1].max() == HIGH  # the first step reached the bound, and stopped there
    assert all(bool((s <= HIGH).all()) for s in starts) and bool((policy.log_std <= HIGH).all())
