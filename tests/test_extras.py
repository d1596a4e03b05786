"""A missing optional package is a ConfigurationError naming the extra
that installs it -- or, for a feature that works without it, no error."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Set

import pytest

import minillm
from minillm.extras import EXTRAS, install_hint, require

PACKAGE = Path(minillm.__file__).resolve().parent

#: Every module that imports an optional package itself rather than through
#: require(), and why that is right there.
OWN_IMPORTS: Dict[str, Set[str]] = {
    # works without it: no bar (documented on batch.run's progress=)
    "batch/progress.py": {"tqdm"},
    # works without it: the catalog is absent, a call is booked UNPRICED
    "accounting/catalog.py": {"genai_prices"},
    # their errors name the extra beside the alternative (a token or a key)
    "providers/vertex.py": {"google.auth"},
    "providers/bedrock.py": {"botocore"},
}


def _optional_imports(path: Path) -> Set[str]:
    """The optional packages ``path`` imports, outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text("utf-8"))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {top for name in names for top in EXTRAS if name == top or name.startswith(top + ".")}
    return found


def test_every_optional_import_goes_through_require_or_is_one_that_may_fail_quietly() -> None:
    seen = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found = _optional_imports(path)
        if found:
            seen[path.relative_to(PACKAGE).as_posix()] = found
    assert seen == OWN_IMPORTS


def test_every_extra_named_is_one_setup_cfg_declares() -> None:
    setup = (PACKAGE.parent / "setup.cfg").read_text("utf-8")
    for module, extra in EXTRAS.items():
        assert f"\n{extra} =\n" in setup, module


def test_require_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(minillm.ConfigurationError, match=r'^Thing needs psycopg 3: pip install "minillm\[postgres\]"$'):
        require("psycopg", what="Thing")
    assert install_hint("botocore") == 'pip install "minillm[bedrock]"'


def test_require_gives_the_module_when_it_is_installed() -> None:
    assert require("tqdm", what="a bar") is pytest.importorskip("tqdm")


@pytest.mark.parametrize(
    "use",
    [
        lambda ledger: ledger.total(),
        lambda ledger: ledger.count,
        lambda ledger: ledger.record(minillm.CostInfo(resolution=minillm.Resolution.UNKNOWN), {}),
    ],
    ids=["total", "count", "record"],
)
def test_a_postgres_ledger_without_psycopg_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, use: Callable[[Any], Any]
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    ledger = minillm.PostgresLedger("postgresql://minillm@127.0.0.1:9/none")
    with pytest.raises(
        minillm.ConfigurationError, match=r'PostgresLedger needs psycopg 3: pip install "minillm\[postgres\]"'
    ):
        use(ledger)


def test_a_batch_asked_for_a_progress_bar_without_tqdm_runs_without_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    results = minillm.batch.run(minillm.Client("local/echo"), ["one", "two"], progress=True)
    assert [result.text for result in results] == ["one", "two"]
    assert capsys.readouterr().err == ""
