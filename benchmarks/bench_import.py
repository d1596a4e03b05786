"""``import minillm`` time, in fresh interpreters, and what it pulls in: the
bare interpreter, ``import minillm`` (the names only), and a first client
(everything a call needs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Dict, List

# As after a normal install: byte-code compiled once and cached, even where
# the environment says not to write it (a warm-up run writes it).
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}

HEAVY = ("requests", "urllib3", "tenacity", "sseclient", "cattrs")

#: A first client of a preset (with its key given: the platforms' credential
#: libraries are imported only at the first request that needs them).
PRESETS = (
    ("openai", "openai/gpt-4o-mini"),
    ("deepseek", "deepseek/deepseek-chat"),
    ("vertex", "vertex/gemini-2.5-flash"),
)
CREDENTIAL_LIBRARIES = ("google.auth.transport.requests", "botocore.auth")


def _first_client(model: str) -> str:
    return f"import minillm; minillm.Client({model!r}, api_key='k', base_url='http://127.0.0.1:9')"


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def import_ms(statement: str) -> float:
    """Wall time of ``statement`` (an import) in a fresh interpreter, in ms."""
    code = f"import time; t = time.perf_counter(); {statement}; print((time.perf_counter() - t) * 1000)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV).stdout
    return float(out)


def interpreter_ms() -> float:
    """Wall time of a whole ``python -c pass``, in ms."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=ENV)
    return (time.perf_counter() - started) * 1000


def whole_ms(statement: str) -> float:
    """Wall time of a whole ``python -c statement``, in ms."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=ENV)
    return (time.perf_counter() - started) * 1000


def heavy_modules_loaded() -> List[str]:
    code = f"import sys, minillm; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def measure(repeats: int) -> Dict[str, float]:
    import_ms("import minillm, requests, sseclient, attrs, cattrs, tenacity; minillm.Client")  # write byte-code
    bare = min(interpreter_ms() for _ in range(repeats))
    whole = min(whole_ms("import minillm") for _ in range(repeats))
    return {
        "python -c pass (ms)": bare,
        "python -c 'import minillm' (ms)": whole,
        "  of which import minillm (ms)": min(import_ms("import minillm") for _ in range(repeats)),
        "  more than a bare interpreter (ms)": whole - bare,
        "import minillm; minillm.Client (first use, ms)": min(
            import_ms("import minillm; minillm.Client") for _ in range(repeats)
        ),
        "import requests, sseclient, attrs, cattrs, tenacity (ms)": min(
            import_ms("import requests, sseclient, attrs, cattrs, tenacity") for _ in range(repeats)
        ),
        **{
            f"a first {name} client (ms)": min(import_ms(_first_client(model)) for _ in range(repeats))
            for name, model in PRESETS
        },
        **{
            f"  its credential library alone: import {module} (ms)": min(
                import_ms(f"import {module}") for _ in range(repeats)
            )
            for module in CREDENTIAL_LIBRARIES
            if _importable(module)
        },
    }


def main(repeats: int = 7) -> Dict[str, float]:
    results = measure(repeats)
    print(f"import time (best of {repeats} fresh interpreters):")
    for name, value in results.items():
        print(f"  {name:52s} {value:8.1f}")
    loaded = heavy_modules_loaded()
    print(f"  heavy modules loaded by 'import minillm': {', '.join(loaded) or 'none'}")
    return results


if __name__ == "__main__":
    main()
