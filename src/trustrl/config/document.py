"""A config as commented TOML: every key with its value, its default and its docstring (``trustrl config``).

The output is itself a config file (``trustrl config walker2d-trpo > mine.toml``): the comments are the
field docstrings of the dataclasses in :mod:`trustrl.config`, read from their source, so the listing
and the code can never disagree.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from functools import cache
from typing import Any

from trustrl.config import Config, toml_key, toml_value


def describe(cfg: Config) -> str:
    """``cfg`` as TOML, each key preceded by a comment: its doc, and its default where the value differs."""
    lines = [*_comment(field_docs(Config)["name"]), f"name = {toml_value(cfg.name)}"]
    for section in ("env", "policy", "critic", "algo", "run", "offline", "vine"):
        obj = getattr(cfg, section)
        cls = type(obj)
        docs = field_docs(cls)
        defaults = cls()
        lines += ["", f"[{section}]"]
        if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):  # a written docstring, not dataclass's
            lines += _comment(cls.__doc__.strip().splitlines()[0])
        for f in dataclasses.fields(cls):
            value, default = getattr(obj, f.name), getattr(defaults, f.name)
            lines += _comment(docs.get(f.name, ""), *(() if value == default else (default,)))
            lines.append(f"{toml_key(f.name)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each field of a dataclass and of its dataclass bases, on one line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _comment(doc: str, *default: Any) -> list[str]:
    """A comment line: the doc, then ``(default: ...)`` when a default is given."""
    text = doc.replace("``", "`")
    if default:
        text += f" (default: {toml_value(default[0])})"
    return [f"# {text}"] if text else []
