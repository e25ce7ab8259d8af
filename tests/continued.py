"""A run extended with ``--resume`` against the run that never stopped."""

import csv
import json
import math
from pathlib import Path

EVAL_COLUMNS = ("eval_return_mean", "eval_return_std", "eval_length_mean")


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def weights(run: Path, tag: str) -> str:
    return json.loads((run / "checkpoints" / f"{tag}.json").read_text())["weights_sha256"]


def assert_extended_is_the_run_in_one_go(extended: Path, whole: Path, boundary: int) -> None:
    """``extended`` ended at step ``boundary``, evaluated its final policy there, and was resumed to the length of
    ``whole``: every row is ``whole``'s but for that evaluation, ``last`` is the same weights, and ``best`` is the
    best of ``extended``'s own evaluations -- ``whole``'s unless the one at the boundary beat them all."""
    a, b = rows(extended), rows(whole)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        if int(ra["step"]) == boundary:
            assert math.isfinite(float(ra["eval_return_mean"])), "the first part's final policy is evaluated"
            if rb["eval_return_mean"] != "nan":  # the boundary is on the schedule: the same evaluation
                assert ra == rb
            ra = {k: v for k, v in ra.items() if k not in EVAL_COLUMNS}
            rb = {k: v for k, v in rb.items() if k not in EVAL_COLUMNS}
        assert ra == rb, ra["step"]
    assert weights(extended, "last") == weights(whole, "last")
    evaluated = [(float(r["eval_return_mean"]), int(r["step"])) for r in a if r["eval_return_mean"] != "nan"]
    best_score = max(score for score, _ in evaluated)
    best_step = next(step for score, step in evaluated if score == best_score)  # strictly better replaces
    assert json.loads((extended / "checkpoints" / "best.json").read_text())["step"] == best_step
    if best_step != boundary:
        assert weights(extended, "best") == weights(whole, "best")
