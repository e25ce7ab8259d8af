"""The shape of the package: no import cycle, arrows that point down, torch-free sampling, small modules.

Read from the source with ``ast``: an import under ``if TYPE_CHECKING:`` is a type hint, not an arrow.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "trustrl"
MAX_LINES = 400


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # type hints only
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


MODULES = {_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {
    name: {m for m in _imports(ast.parse(path.read_text())) if m in MODULES and m != name}
    for name, path in MODULES.items()
}
#: What importing each module imports at once (a function's own import runs only when it is called).
AT_IMPORT = {name: _imports(ast.Module([n for n in ast.parse(path.read_text()).body
                                       if not isinstance(n, (ast.FunctionDef, ast.ClassDef))], []))
             for name, path in MODULES.items()}


def _reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_module_imports_itself_back():
    cycles = sorted(name for name in MODULES if name in _reach(name) and not MODULES[name].name == "__init__.py")
    assert cycles == []


@pytest.mark.parametrize("module", ["trustrl.samplers.worker", "trustrl.samplers.placement", "trustrl.samplers.ray",
                                    "trustrl.config.sections", "trustrl.envs"])
def test_what_a_worker_process_loads_imports_no_torch(module):
    loaded = {module, *_reach(module)}
    assert not [m for m in loaded if any(i == "torch" or i.startswith("torch.") for i in AT_IMPORT[m])]


@pytest.mark.parametrize("low", ["trustrl.nets", "trustrl.trust_region", "trustrl.value_fit", "trustrl.advantages",
                                 "trustrl.batch", "trustrl.normalization", "trustrl.envs", "trustrl.samplers"])
def test_low_modules_point_down_only(low):
    """Nothing below the config, the run loop or the front door imports them."""
    high = ("trustrl.config.schema", "trustrl.config.resolve", "trustrl.run", "trustrl.api", "trustrl.cli")
    loaded = {low, *_reach(low)}
    assert not [m for m in loaded if m.startswith(high)]


def test_no_module_is_over_400_lines():
    assert {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES} == {}
