"""What a training run returns, and the one line ``trustrl train`` prints of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainResult:
    run_dir: Path
    steps: int  # env steps (online) or dataset transitions processed (offline)
    updates: int
    seconds: float  # wall time of the training loop (of this invocation, for a resumed run)
    best_return: float  # best evaluation, or best rolling training return without evaluation (nan if none)
    last_return: float  # rolling mean of recent training episodes at the end (nan offline)
    eval_initial: float = math.nan  # evaluation of the starting policy
    eval_last: float = math.nan  # the last evaluation
    notes: list[str] = field(default_factory=list)
    name: str = ""  # the config name
    extra: dict = field(default_factory=dict)  # offline: dataset, episodes, transitions, behaviour return and source
    stopped_by_callback: bool = False  # a callback ended the run before its length (``steps`` is where)

    def summary(self) -> str:
        """One line: what was trained, for how long, and how well."""
        evaluated = "" if math.isnan(self.eval_last) else (
            f"; deterministic eval: start {self.eval_initial:.1f}, last {self.eval_last:.1f}")
        if "dataset" in self.extra:
            x = self.extra
            return (f"trained offline on {x['dataset']} ({x['episodes']} episodes, {x['transitions']} transitions) "
                    f"for {self.updates} epochs in {self.seconds:.0f}s; behaviour return "
                    f"{x['behaviour_return_mean']:.1f} (beta from the {x['behaviour_source']}){evaluated}, best "
                    f"{self.best_return:.1f}; run dir {self.run_dir}")
        return (f"trained {self.name} for {self.steps} steps ({self.updates} updates) in {self.seconds:.0f}s; "
                f"recent mean return {self.last_return:.1f}, best {self.best_return:.1f}{evaluated}; "
                f"run dir {self.run_dir}")
