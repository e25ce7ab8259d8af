"""How much of a run's fall is its observation statistics: each checkpoint's policy with each one's statistics.

    .venv/bin/python benchmarks/obs_drift.py runs/bench-suite/walker2d-trpo-wide/seed0
    .venv/bin/python benchmarks/obs_drift.py RUN --tags best last --episodes 10

A policy acts on observations normalised with the running statistics of its checkpoint. The trust region
bounds how far an update moves the policy on those normalised observations, not how far the statistics
move under it. Here the weights of every tag (``best``, ``last``, ``step-N``) play 10 deterministic episodes
(``trustrl eval``'s) with the statistics of every tag: if the last weights score what the best did once they
are given the best checkpoint's statistics, the fall was in the statistics, not in the weights. Prints a
Markdown table, one row per weights, one column per statistics.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def swapped_returns(agents: dict, episodes: int) -> dict[tuple[str, str], tuple[float, float]]:
    """(weights tag, statistics tag) -> (mean return, mean episode length) over ``episodes`` episodes, for
    ``agents`` {tag: Agent} of one run."""
    from trustrl.episodes import evaluate_agent

    out = {}
    for weights, agent in agents.items():
        for statistics, other in agents.items():
            result = evaluate_agent(dataclasses.replace(agent, obs_norm=other.obs_norm), episodes)
            out[weights, statistics] = (result.mean_return, result.mean_length)
    return out


def table(run: Path, tags: list[str], episodes: int) -> str:
    from trustrl.api import load

    agents = {tag: load(run, tag) for tag in tags}
    steps = {tag: agent.checkpoint.step for tag, agent in agents.items()}
    results = swapped_returns(agents, episodes)
    head = [f"statistics of {tag} (step {steps[tag]})" for tag in tags]
    lines = [f"| weights of | {' | '.join(head)} |", "|---|" + "---:|" * len(tags)]
    for weights in tags:
        cells = [f"{results[weights, s][0]:.0f} ({results[weights, s][1]:.0f} steps)" for s in tags]
        lines.append(f"| {weights} (step {steps[weights]}) | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--tags", nargs="+", default=["best", "last"])
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    print(f"{args.run}: mean return (mean episode length) over {args.episodes} deterministic episodes\n")
    print(table(args.run, args.tags, args.episodes))


if __name__ == "__main__":
    main()
