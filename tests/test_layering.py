"""Production code loads no test helpers, and a local engine loads no HTTP
server: what a ``local/`` client imports, seen from a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import minillm.engines.scripted
import minillm.testing
import minillm.testing.server

LOADED = """
import json, sys
import minillm
client = minillm.Client("local/echo")
assert client.complete("say this").text == "say this"
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("minillm.testing", "minillm.serve", "minillm._http")))))
"""


def test_a_local_client_loads_the_application_but_no_test_helper_and_no_http_server(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOADED], capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    # The in-process transport runs the same application ``minillm serve``
    # does -- routing, request checks, the wire shapes -- but not its server.
    assert json.loads(done.stdout) == ["minillm.serve", "minillm.serve.app"]


def test_the_scripted_steps_are_one_type_for_the_engine_and_the_server() -> None:
    for name in ("Gate", "Pause"):
        assert getattr(minillm.testing, name) is getattr(minillm.engines.scripted, name)
        assert getattr(minillm.testing.server, name) is getattr(minillm.engines.scripted, name)
