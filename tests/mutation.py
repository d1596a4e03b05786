"""Mutation testing of the money path: ``python -m tests.mutation``.

Each mutant is one small change to one line of the code that decides what
is booked and for how much -- a comparison turned around, an arithmetic
operator swapped, ``and`` for ``or``, a constant nudged, a condition
negated -- made in a copy of the package, and the money tests are run
against it. A mutant the tests fail on is *killed*; one they pass is a
*survivor*: a change to the money path nobody would notice. The score is
the share killed.

Options: ``--list`` shows the mutants without running them, ``--only N,M``
runs some of them, ``--timeout S`` bounds each run (a mutant that hangs is
killed too), ``--jobs N`` runs that many at once.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]

#: The money path: (file, the functions of it that are mutated; None: all).
TARGETS: List[Tuple[str, Optional[Tuple[str, ...]]]] = [
    ("minillm/accounting/settlement.py", None),
    ("minillm/accounting/pricing.py", None),
    ("minillm/accounting/budget.py", ("worst_case", "estimate_prompt_tokens", "settled")),
    (
        "minillm/accounting/ledgers/memory.py",
        ("record_once", "_count", "_start_running_totals", "hold", "_spent", "_sum", "total", "_totals"),
    ),
    ("minillm/models.py", ("_check_cost",)),
    ("minillm/accounting/ledgers/sqlite.py", ("record", "_spent", "_decimal_add", "_migrate", "step", "finalize")),
    ("minillm/accounting/ledgers/scopes.py", None),
    ("minillm/accumulate.py", ("accumulate", "output_deltas", "final_usage", "is_terminal")),
    ("minillm/providers/openai_chat.py", ("usage_from_chat",)),
    ("minillm/providers/anthropic.py", ("usage_from_anthropic",)),
    ("minillm/providers/gemini.py", ("usage_from_gemini",)),
    ("minillm/providers/openai_responses.py", ("usage_from_responses",)),
    ("minillm/providers/openrouter.py", ("parse_lookup",)),
]

#: The tests that guard the money path (a mutant is judged in seconds; the
#: PostgreSQL ledger runs the same SQL checks as SQLite and is left out).
TESTS = [
    "tests/test_settlement.py",
    "tests/test_money_path.py",
    "tests/test_token_price.py",
    "tests/test_usage_fields.py",
    "tests/test_catalog.py",
    "tests/test_money.py",
    "tests/test_pricing.py",
    "tests/test_accumulate.py",
    "tests/test_budget.py",
    "tests/test_ledgers.py",
    "tests/test_ledger.py",
    "tests/test_providers.py",
    "tests/test_conformance.py",
    "tests/test_fault_matrix.py",
    "tests/test_streaming.py",
    "tests/test_lookups.py",
    "tests/test_invoice.py",
]

#: Mutants that cannot change behaviour, with the reason: (file, line as
#: written, line as mutated). They are reported, not run, and not scored.
EQUIVALENT = {
    (
        "minillm/accounting/settlement.py",
        "elif deltas > usage.completion_tokens:",
        "elif deltas >= usage.completion_tokens:",
    ): "when the two are equal, replacing one count by the other changes nothing",
    (
        "minillm/accounting/ledgers/memory.py",
        "for hold_id in [h for h, hold in self._holds.items() if hold.expires < now]:",
        "for hold_id in [h for h, hold in self._holds.items() if hold.expires <= now]:",
    ): "a hold expiring at the very instant of the check: both readings are right",
    (
        "minillm/accounting/pricing.py",
        "prompt = usage.prompt_tokens if usage.prompt_tokens > 0 else 0",
        "prompt = usage.prompt_tokens if usage.prompt_tokens >= 0 else 0",
    ): "a prompt of 0 tokens is 0 either way",
    (
        "minillm/accounting/pricing.py",
        "reads = 0 if reads <= 0 else reads if reads < prompt else prompt",
        "reads = 0 if reads < 0 else reads if reads < prompt else prompt",
    ): "0 reads are capped to 0 by the other branch too",
    (
        "minillm/accounting/pricing.py",
        "reads = 0 if reads <= 0 else reads if reads < prompt else prompt",
        "reads = 0 if reads <= 0 else reads if reads <= prompt else prompt",
    ): "when reads equal the prompt, either is the same count",
    (
        "minillm/accounting/pricing.py",
        "writes = 0 if writes <= 0 else min(writes, prompt - reads)",
        "writes = 0 if writes < 0 else min(writes, prompt - reads)",
    ): "min(0, what is left of the prompt) is 0",
    (
        "minillm/accounting/pricing.py",
        "if completion > 0:",
        "if completion >= 0:",
    ): "adding 0 output tokens adds nothing",
    (
        "minillm/accounting/ledgers/scopes.py",
        "and (type(value) is not str or len(value) <= _RECURRING_LENGTH)",
        "and (type(value) is not str or len(value) < _RECURRING_LENGTH)",
    ): "whether a pair's names are remembered, never what they are",
    (
        "minillm/accounting/ledgers/scopes.py",
        "and len(key) <= _RECURRING_LENGTH",
        "and len(key) < _RECURRING_LENGTH",
    ): "whether a pair's names are remembered, never what they are",
    (
        "minillm/accounting/ledgers/scopes.py",
        "_RECURRING_LENGTH = 64",
        "_RECURRING_LENGTH = 65",
    ): "whether a pair's names are remembered, never what they are",
    (
        "minillm/accounting/ledgers/scopes.py",
        "_recurring_pair_names = functools.lru_cache(maxsize=4096, typed=True)(_pair_names)",
        "_recurring_pair_names = functools.lru_cache(maxsize=4097, typed=True)(_pair_names)",
    ): "how many names are remembered, never what they are",
}

_COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq}
_COMPARE_SWAPS.update({ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn})
_BINARY_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


class Mutant:
    """One change: replace ``old`` by ``new`` on ``line`` (1-based) of ``path``."""

    def __init__(self, path: str, line: int, old: str, new: str, what: str) -> None:
        self.path, self.line, self.old, self.new, self.what = path, line, old, new, what

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}: {self.old.strip()}  ->  {self.new.strip()}"


def _in_targets(node: ast.AST, functions: Optional[Tuple[str, ...]], parents: List[ast.AST]) -> bool:
    if functions is None:
        return True
    return any(isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef)) and p.name in functions for p in parents)


def _walk(node: ast.AST, parents: List[ast.AST]) -> Iterator[Tuple[ast.AST, List[ast.AST]]]:
    yield node, parents
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, [*parents, node])


def mutants_of(path: str, functions: Optional[Tuple[str, ...]], root: Path = ROOT) -> Iterator[Mutant]:
    source = (root / path).read_text("utf-8")
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    for node, parents in _walk(tree, []):
        if not _in_targets(node, functions, parents) or isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        number = getattr(node, "lineno", None)
        if number is None or getattr(node, "end_lineno", None) != number:
            continue  # one-line nodes only: the change is made to one line
        line = lines[number - 1]
        start, end = getattr(node, "col_offset", 0), getattr(node, "end_col_offset", 0)
        for replacement, what in _changes(node):
            new = line[:start] + replacement + line[end:]
            if new != line:
                yield Mutant(path, number, line, new, what)


def _changes(node: ast.AST) -> Iterator[Tuple[str, str]]:
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_SWAPS:
        swapped = ast.Compare(node.left, [_COMPARE_SWAPS[type(node.ops[0])]()], node.comparators)
        yield ast.unparse(swapped), "comparison"
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY_SWAPS:
        yield ast.unparse(ast.BinOp(node.left, _BINARY_SWAPS[type(node.op)](), node.right)), "arithmetic"
    elif isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield ast.unparse(ast.BoolOp(other, node.values)), "and/or"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield ast.unparse(node.operand), "not removed"
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield repr(not node.value), "boolean"
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        yield repr(node.value + 1), "constant"
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("max", "min"):
        yield ast.unparse(ast.Call(ast.Name("min" if node.func.id == "max" else "max"), node.args, [])), "max/min"


def _equivalence(mutant: Mutant) -> Optional[str]:
    return EQUIVALENT.get((mutant.path, mutant.old.strip(), mutant.new.strip()))


def all_mutants(root: Path = ROOT) -> List[Mutant]:
    return [mutant for path, functions in TARGETS for mutant in mutants_of(path, functions, root)]


def snapshot(into: Path) -> Path:
    """A copy of what the tests need, taken once: the tree may change while
    the mutants run."""
    shutil.copytree(ROOT / "minillm", into / "minillm", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", into / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", into / "setup.cfg")
    return into


def run(mutant: Mutant, timeout: float, source: Path) -> Tuple[Mutant, str, float]:
    """Apply ``mutant`` in a copy of ``source`` and run the money tests on it."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="minillm-mutant-") as folder:
        copy = Path(folder)
        shutil.copytree(source, copy, dirs_exist_ok=True)
        target = copy / mutant.path
        lines = target.read_text("utf-8").splitlines(keepends=True)
        assert lines[mutant.line - 1] == mutant.old, mutant
        lines[mutant.line - 1] = mutant.new
        target.write_text("".join(lines), "utf-8")
        env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", "MINILLM_PRICE_CATALOG": "off"}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-k", "not postgres", *TESTS]
        try:
            done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return mutant, "killed (timed out)", time.monotonic() - started
        verdict = "survived" if done.returncode == 0 else "killed"
        if done.returncode not in (0, 1):  # the mutant broke the import, say: killed all the same
            verdict = "killed (the tests could not run)"
    return mutant, verdict, time.monotonic() - started


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--only", help="run only these mutants (numbers, comma-separated)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for one mutant's test run")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once")
    args = parser.parse_args(argv)
    taken = tempfile.TemporaryDirectory(prefix="minillm-mutation-")
    source = snapshot(Path(taken.name))
    mutants = all_mutants(source)
    chosen = list(enumerate(mutants, 1))
    if args.only:
        wanted = {int(n) for n in args.only.split(",")}
        chosen = [(n, m) for n, m in chosen if n in wanted]
    if args.list:
        for number, mutant in chosen:
            print(f"{number:4d}  {mutant}")
        return 0
    survivors: List[Tuple[int, Mutant]] = []
    equivalent = [(n, m) for n, m in chosen if _equivalence(m) is not None]
    for number, mutant in equivalent:
        print(f"{number:4d}  {'equivalent: ' + str(_equivalence(mutant)):34s}          {mutant}", flush=True)
    chosen = [(n, m) for n, m in chosen if _equivalence(m) is None]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        futures = {pool.submit(run, mutant, args.timeout, source): number for number, mutant in chosen}
        for future in concurrent.futures.as_completed(futures):
            mutant, verdict, seconds = future.result()
            number = futures[future]
            print(f"{number:4d}  {verdict:34s} {seconds:6.1f}s  {mutant}", flush=True)
            if verdict == "survived":
                survivors.append((number, mutant))
    killed = len(chosen) - len(survivors)
    print(
        f"\n{killed} of {len(chosen)} mutants killed ({100 * killed / max(len(chosen), 1):.1f}%);"
        f" {len(equivalent)} equivalent ones not run"
    )
    for number, mutant in sorted(survivors, key=lambda item: item[0]):
        print(f"survivor {number}: {mutant}")
    taken.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
