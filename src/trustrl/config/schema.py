"""The whole config: its sections, one algorithm's settings, the checks across them, and the dict/TOML forms.

The checks across sections ask the algorithm what it can learn from (its declared
:class:`~trustrl.algos.base.Capabilities`), never a list of names.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import tomli_w

from trustrl.algos import ALGORITHMS, AlgoConfig, TRPOConfig, able
from trustrl.config.limits import MAX_BATCH
from trustrl.config.sections import CriticConfig, EnvConfig, OfflineConfig, PolicyConfig, RunConfig, VineConfig
from trustrl.config.values import build_section, toml_safe
from trustrl.errors import ConfigError
from trustrl.suggestions import close_matches

#: Algorithm name -> its config dataclass.
ALGO_CONFIGS: dict[str, type[AlgoConfig]] = {name: algo.config for name, algo in ALGORITHMS.items()}


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
        if self.run.async_sampling and not self._online_with("stale_batches"):
            raise ConfigError(f"run.async_sampling needs online {_names('stale_batches')}, whose surrogate corrects "
                              f"for the policy that acted one update earlier (not {self._algo_label()})")
        if self.run.sampling == "vine":
            self._validate_vine()
        if self.run.init_from and self.offline.dataset:
            raise ConfigError("run.init_from starts an online run from a trained policy; it cannot be combined with "
                              "an offline dataset")
        if (self.run.workers > 1 or self.run.placement == "ray") and self.env.vectorization != "sync":
            raise ConfigError("env.vectorization = 'async' gives each copy a process of its own; with run.workers "
                              "or run.placement = 'ray' the workers step the copies, so leave it 'sync'")
        return self

    def _validate_vine(self) -> None:
        if not self._online_with("vine"):
            raise ConfigError("run.sampling = 'vine' estimates the surrogate of a trust-region step: it needs "
                              f"online {_names('vine')} (not {self._algo_label()})")
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

    def _online_with(self, capability: str) -> bool:
        return getattr(ALGORITHMS[self.algo.name].capabilities, capability) and not self.offline.dataset

    def _algo_label(self) -> str:
        return f"{self.algo.name}{' from a dataset' if self.offline.dataset else ''}"

    def to_dict(self) -> dict[str, Any]:
        return toml_safe(dataclasses.asdict(self))

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


#: Keys renamed since a run directory could have been written: (section, old name) -> new name.
RENAMED = {("run", "sampler"): "placement"}
_log = logging.getLogger("trustrl")


def renamed_keys(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` with each renamed key under its new name, and one note per key on the ``trustrl`` logger, so
    configs and run directories written before the rename still read."""
    data = dict(data)
    for (section, old), new in RENAMED.items():
        table = data.get(section)
        if not isinstance(table, dict) or old not in table:
            continue
        if new in table:
            raise ConfigError(f"{source}: {section}.{old} is the old name of {section}.{new}; give only {section}.{new}")
        data[section] = {(new if key == old else key): value for key, value in table.items()}
        _log.warning(f"note: {source}: {section}.{old} is now called {section}.{new} (read as such)")
    return data


def key_names(algo: str = "trpo") -> list[str]:
    """Every ``section.key`` a config with algorithm ``algo`` has."""
    tables = {**SECTIONS, "algo": ALGO_CONFIGS.get(algo, TRPOConfig)}
    return ["name", *(f"{section}.{f.name}" for section, cls in tables.items() for f in dataclasses.fields(cls))]


def similar_keys(key: str, algo: str = "trpo") -> list[str]:
    """The ``section.key`` names that ``key`` -- ``max_kl``, ``run.max_kl``, ``algo.maxkl`` -- may have meant:
    the key given in whatever section it is, else the closest spelling."""
    names = key_names(algo)
    bare = key.rpartition(".")[2]
    same = [name for name in names if name.rpartition(".")[2].lower() == bare.lower() and name != key]
    if same:
        return same
    closest = close_matches(key, names, n=1) if "." in key else []
    if closest:
        return closest
    keys = close_matches(bare, [name.rpartition(".")[2] for name in names], n=1)
    return [name for name in names if name.rpartition(".")[2] in keys]


def from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Build and validate a Config; unknown sections or keys are errors, not ignored."""
    data = renamed_keys(data, source)
    unknown = set(data) - {"name", "algo", *SECTIONS}
    if unknown:
        raise ConfigError(f"{source}: unknown section {_quoted(unknown)}; sections are {', '.join(['name', 'algo', *SECTIONS])}")
    cfg = Config(name=str(data.get("name", "custom")))
    algo = dict(data.get("algo", {}))
    algo_name = algo.get("name", "trpo")
    similar = lambda key: similar_keys(key, algo_name)  # noqa: E731 -- a wrong section's key is found in its own
    for section, cls in SECTIONS.items():
        setattr(cfg, section, build_section(cls, data.get(section, {}), section, source, similar))
    if algo_name not in ALGO_CONFIGS:
        raise ConfigError(f"{source}: unknown algorithm {algo_name!r}; choose from {', '.join(sorted(ALGO_CONFIGS))}")
    cfg.algo = build_section(ALGO_CONFIGS[algo_name], algo, "algo", source, similar)
    return cfg.validate()


def _names(capability: str) -> str:
    """``TRPO or NPG``: the algorithms with ``capability``, for messages (the trust-region rule first)."""
    return " or ".join(name.upper() for name in sorted(able(capability), reverse=True))


def _quoted(names: set[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names))
