"""The search space of ``trustrl tune``: ``--param KEY=SPEC`` strings parsed into ranges and choices that
draw their values from an Optuna trial (the forms: :mod:`trustrl.tune`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from trustrl import config as config_mod
from trustrl.errors import ConfigError
from trustrl.suggestions import did_you_mean

KINDS = ("float", "log", "int", "logint")


@dataclass(frozen=True)
class Param:
    """One searched config key: a range (``kind`` float, log, int, logint) or a list of choices."""

    key: str
    kind: str  # one of KINDS, or "choice"
    low: float = 0.0
    high: float = 0.0
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.kind == "choice":
            index = trial.suggest_categorical(self.key, list(range(len(self.choices))))
            return self.choices[index]  # by index: Optuna stores only scalars, a choice may be a list
        if self.kind in ("int", "logint"):
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.kind == "logint")
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log")

    def override(self, value: Any) -> str:
        """``section.key=value`` in the TOML syntax ``--set`` reads."""
        return f"{self.key}={config_mod.toml_value(value)}"

    def endpoints(self) -> list[Any]:
        """Values every trial's draw lies between (or among): checked against the config before any trial."""
        if self.kind == "choice":
            return list(self.choices)
        cast = int if self.kind in ("int", "logint") else float
        return [cast(self.low), cast(self.high)]


def parse_param(text: str) -> Param:
    """``KEY=SPEC`` (see the module docstring) -> a :class:`Param`; one error naming what is wrong."""
    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    if not sep or not key or not spec:
        raise ConfigError(f"--param expects KEY=SPEC (e.g. algo.max_kl=log:0.005:0.05), got {text!r}")
    if len(key.split(".")) != 2:
        raise ConfigError(f"--param {text!r}: the key must be section.key (e.g. algo.max_kl)"
                          f"{did_you_mean(config_mod.similar_keys(key))}")
    if key == "run.seed":
        raise ConfigError("--param run.seed: the seeds of a trial are --seeds, not a searched value")
    kind, colon, rest = spec.partition(":")
    if colon and kind in KINDS:
        low_text, colon2, high_text = rest.partition(":")
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            low = high = math.nan
        if not colon2 or not (math.isfinite(low) and math.isfinite(high)):
            raise ConfigError(f"--param {key}: a range is {kind}:LOW:HIGH with two numbers, got {spec!r}")
        if not low < high:
            raise ConfigError(f"--param {key}: LOW must be below HIGH, got {low:g} and {high:g}")
        if kind in ("log", "logint") and low <= 0:
            raise ConfigError(f"--param {key}: a log range needs LOW > 0, got {low:g}")
        if kind in ("int", "logint") and not (low.is_integer() and high.is_integer()):
            raise ConfigError(f"--param {key}: an integer range needs integer ends, got {low:g} and {high:g}")
        return Param(key, kind, low, high)
    if colon and kind.isalpha() and not spec.startswith(("[", "{", '"')):
        raise ConfigError(f"--param {key}: unknown range kind {kind!r}; use {', '.join(KINDS)}, or choices a,b,c")
    parts = spec.split("|") if "|" in spec else spec.split(",")
    choices = tuple(config_mod.parse_value(p.strip()) for p in parts if p.strip())
    if len(choices) < 2 or len(set(map(repr, choices))) != len(choices):
        raise ConfigError(f"--param {key}: give a range (log:LOW:HIGH, ...) or two or more distinct choices, "
                          f"got {spec!r}")
    return Param(key, "choice", choices=choices)


def searched_params(params: list[str]) -> list[Param]:
    """The ``--param`` specs parsed, at least one and no key twice."""
    searched = [parse_param(p) for p in params]
    if not searched:
        raise ConfigError("tune needs at least one --param KEY=SPEC")
    keys = [p.key for p in searched]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--param {next(k for k in keys if keys.count(k) > 1)} is given twice")
    return searched
