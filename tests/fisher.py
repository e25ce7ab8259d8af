"""The Fisher matrix of a small policy, formed explicitly: the reference for the Fisher-vector products."""

import math

import torch
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector


def mean_kl_hessian(policy, obs, damping):
    """Explicit Hessian of the mean KL(old || theta) at theta = old, via torch.autograd.functional."""
    names = [n for n, _ in policy.named_parameters()]
    shapes = [p.shape for _, p in policy.named_parameters()]
    theta0 = parameters_to_vector(policy.parameters()).detach()
    with torch.no_grad():
        old = policy(obs)

    def kl_of(flat):
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            k = math.prod(shape)
            params[name] = flat[i : i + k].reshape(shape)
            i += k
        return old.kl(functional_call(policy, params, (obs,))).mean()

    h = torch.autograd.functional.hessian(kl_of, theta0)
    return h + damping * torch.eye(len(theta0), dtype=h.dtype)
