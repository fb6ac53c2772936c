#!/usr/bin/env python3
"""The size gates of `make test`: no function in pressroom/ or flows/ above cyclomatic complexity 15 (radon),
no module above 700 lines, and the CLI's one door to Prefect stays lazy (flows/ imported inside a command only).

There is no allow-list: what goes over a limit is split before it merges.
``--figures`` prints the counts the closing notes quote (functions above 10, 15 and 20; the largest modules).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Function

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pressroom", "flows")
SKIP = ("pressroom/migrations/",)  # generated Alembic revisions: one function each, written once
MAX_COMPLEXITY = 15
MAX_LINES = 700


def modules() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not relative.startswith(SKIP):
                yield path


def functions(path: Path) -> Iterator[tuple[str, int, int]]:
    """(qualified name, line, complexity) of every function and method in ``path``."""
    for block in cc_visit(path.read_text(encoding="utf-8")):
        if isinstance(block, Function):  # methods come as functions too, with their class named
            name = f"{block.classname}.{block.name}" if block.classname else block.name
            yield name, block.lineno, block.complexity


def eager_flow_imports(path: Path) -> Iterator[int]:
    """Lines of ``path`` that import flows/ at module level (the CLI may only do so inside a command)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        if any(name == "flows" or name.startswith("flows.") for name in names):
            yield node.lineno


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", action="store_true", help="print the counts, then check")
    args = parser.parse_args()

    failures: list[str] = []
    scores: list[tuple[int, str]] = []
    sizes: list[tuple[int, str]] = []
    for path in modules():
        relative = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        sizes.append((lines, relative))
        if lines > MAX_LINES:
            failures.append(f"{relative}: {lines} lines, above {MAX_LINES}: split it by concern into rooms of its own")
        for name, lineno, complexity in functions(path):
            scores.append((complexity, f"{relative}:{lineno} {name}"))
            if complexity > MAX_COMPLEXITY:
                failures.append(
                    f"{relative}:{lineno}: {name} has cyclomatic complexity {complexity}, above {MAX_COMPLEXITY}: "
                    "give its branches names (a table, a helper per case) until each reads at a glance"
                )
        if relative.startswith("pressroom/cli/"):
            failures += [
                f"{relative}:{lineno}: imports flows/ at module level: import it inside the command that needs it "
                "(the CLI's one door to Prefect stays lazy, so the core loads without it)"
                for lineno in eager_flow_imports(path)
            ]

    if args.figures:
        counts = {limit: sum(score > limit for score, _ in scores) for limit in (10, 15, 20)}
        print(f"functions above complexity 10: {counts[10]}, above 15: {counts[15]}, above 20: {counts[20]}")
        for score, where in sorted(scores, reverse=True)[:10]:
            print(f"  {score:3d}  {where}")
        print("largest modules: " + ", ".join(f"{relative} ({lines})" for lines, relative in sorted(sizes, reverse=True)[:3]))
    for failure in failures:
        print(failure, file=sys.stderr)
    if not failures:
        print(f"complexity and size gates: every function <= {MAX_COMPLEXITY} and every module <= {MAX_LINES} lines")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
