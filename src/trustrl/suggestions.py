"""Did-you-mean for names a user types: env ids, presets, config keys.

Compared without case, so ``cartpole-v1`` finds ``CartPole-v1``; a name equal but for case is the only
suggestion, since nothing else can be meant.
"""

from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``candidates`` that ``name`` may have meant, the closest first."""
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    if name.lower() in by_lower:
        return [by_lower[name.lower()]]
    return [by_lower[match] for match in difflib.get_close_matches(name.lower(), by_lower, n=n)]


def did_you_mean(hints: list[str]) -> str:
    """``"; did you mean a, b?"`` to end a message with, or nothing."""
    return f"; did you mean {', '.join(hints)}?" if hints else ""
