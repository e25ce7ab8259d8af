"""The vine surrogate at one set of rollout states (Schulman et al. 2015, section 5.2): pure tensor math.

With ``K`` actions tried at each rollout state s_n and their advantages A_nk
(Q-values less a per-state constant, which changes neither estimator):

- every action of a Discrete space (``exact``): L_n = sum_k pi_theta(a_k|s_n) A_nk,
  the expectation over actions computed exactly rather than sampled;
- actions drawn from pi_old: the self-normalised importance-sampling estimate
  L_n = sum_k r_k A_nk / sum_k r_k with r_k = pi_theta(a_k|s_n) / pi_old(a_k|s_n).

The surrogate is the mean of L_n over the rollout states; the trust region is
the mean KL over the same states (:func:`trustrl.algos.natural.vine_objective`).
"""

from __future__ import annotations

from torch import Tensor


def vine_surrogate(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, exact: bool) -> Tensor:
    """Mean over states of L_n; every argument ``(M, K)``: log pi_theta(a_k|s_n), log pi_old(a_k|s_n), A_nk."""
    if exact:
        per_state = (log_probs.exp() * advantages).sum(-1)
    else:
        ratio = (log_probs - old_log_probs).exp()
        per_state = (ratio * advantages).sum(-1) / ratio.sum(-1)
    return per_state.mean()
