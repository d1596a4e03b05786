"""The `minillm` command line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minillm.cli import main
from minillm.demo import ANSWER, run_demo

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }
    return subprocess.run([sys.executable, "-m", "minillm", *args], capture_output=True, text=True, timeout=60, env=env)


def test_the_demo_streams_the_answer_and_settles_its_cost_once() -> None:
    out = io.StringIO()
    ledger = run_demo(out, delay=0)
    text = out.getvalue()
    assert ANSWER in text
    assert ledger.count == 1
    cost = ledger.records[0][0]
    assert cost.usd is not None and cost.usd > 0
    assert f"settled once: {cost.prompt_tokens} prompt + {cost.completion_tokens} completion tokens" in text
    assert "(resolved)" in text


def test_python_dash_m_minillm_demo_works_end_to_end() -> None:
    result = run("demo", "--delay", "0")
    assert result.returncode == 0, result.stderr
    assert "settled once:" in result.stdout and "ledger: 1 booking" in result.stdout


@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"]])
def test_help_is_everywhere(args: list) -> None:  # type: ignore[type-arg]
    result = run(*args)
    assert result.returncode == 0 and "usage: minillm" in result.stdout


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: minillm" in capsys.readouterr().out


def test_the_version_is_reported() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("minillm ")
