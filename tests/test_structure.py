"""The structure proxy: no module over 350 lines, no class over 150, no function over 60."""

import ast

import pytest

from tests.helpers import REPO_ROOT

LIMITS = {"module": 350, "class": 150, "function": 60}
SOURCES = sorted(p for folder in ("stew_tf", "datasets", "benchmarks")
                 for p in (REPO_ROOT / folder).rglob("*.py"))


def _too_long(path):
  text = path.read_text()
  found = []
  if len(text.splitlines()) > LIMITS["module"]:
    found.append(f"{path.name}: {len(text.splitlines())} lines")
  for node in ast.walk(ast.parse(text)):
    kind = ("class" if isinstance(node, ast.ClassDef) else
            "function" if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None)
    if kind and node.end_lineno - node.lineno + 1 > LIMITS[kind]:
      found.append(f"{path.name}:{node.lineno} {kind} {node.name}: "
                   f"{node.end_lineno - node.lineno + 1} lines")
  return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_module_class_or_function_is_over_its_limit(path):
  assert _too_long(path) == []


def test_the_check_finds_a_long_function(tmp_path):
  source = tmp_path / "long.py"
  source.write_text("def f():\n" + "  x = 1\n" * 60)
  assert _too_long(source) == ["long.py:1 function f: 61 lines"]
