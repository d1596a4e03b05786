"""The public surface: what `import minillm` offers, and what it costs."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, List

import pytest

import minillm

CONTRACT = {
    # API.md: every name users rely on.
    "Client", "TrackedStream", "Response", "Chunk", "Usage", "ToolCall", "CostInfo", "Resolution",
    "TokenPrice", "Ledger", "RetryPolicy", "Timeout", "CancellationToken", "MiniLLMError", "APIError",
    "AuthenticationError", "RateLimitError", "BadRequestError", "ContextOverflowError", "ServerError",
    "APIConnectionError", "APITimeoutError", "StreamError", "ConfigurationError",
}  # fmt: skip


def test_all_is_sorted_and_names_exactly_the_public_attributes() -> None:
    assert minillm.__all__ == sorted(minillm.__all__)
    for name in minillm.__all__:
        getattr(minillm, name)  # each is imported on first use
    public = {
        name
        for name, value in vars(minillm).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert set(minillm.__all__) == public | {"__version__"}
    assert set(dir(minillm)) >= set(minillm.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        minillm.Clinet  # type: ignore[attr-defined]  # noqa: B018


def test_importing_minillm_imports_nothing_but_its_names() -> None:
    code = "import sys, minillm; print(sorted(m for m in sys.modules if m.startswith(('minillm', 'attr'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["['minillm',", "'minillm._version']"]


def test_every_name_of_the_contract_is_exported() -> None:
    assert set(minillm.__all__) >= CONTRACT


def loaded_after(code: str, *modules: str) -> List[str]:
    """Which of ``modules`` a fresh interpreter has loaded after ``import minillm; code``."""
    script = f"import sys, minillm; {code}; print(','.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return [name for name in out.strip().split(",") if name]


def test_importing_minillm_loads_neither_the_http_nor_the_retry_stack() -> None:
    stacks = ("requests", "urllib3", "tenacity", "sseclient", "cattrs", "genai_prices", "pydantic", "sqlite3")
    assert loaded_after("pass", *stacks, "psycopg", "http.server") == []


def test_the_package_is_typed() -> None:
    assert (Path(minillm.__file__).parent / "py.typed").exists()


def test_every_module_says_what_it_owns() -> None:
    # Read, not imported: some modules may only be imported in their
    # context (Django models need configured settings; __main__ runs).
    for info in pkgutil.walk_packages(minillm.__path__, "minillm."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None, info.name
        docstring = ast.get_docstring(ast.parse(Path(spec.origin).read_text("utf-8")))
        assert docstring and docstring.strip(), info.name


def test_the_version_is_a_string() -> None:
    assert isinstance(minillm.__version__, str) and minillm.__version__.count(".") == 2


def test_the_api_reference_documents_exactly_the_public_names() -> None:
    import re

    import minillm.accounting.ledgers
    import minillm.batch
    import minillm.contrib.django
    import minillm.contrib.otel
    import minillm.engines
    import minillm.serve
    import minillm.testing

    page = (Path(__file__).resolve().parents[1] / "docs" / "api.rst").read_text("utf-8")
    documented = set(re.findall(r"^\.\. auto(?:class|exception|function|data):: (\S+)", page, re.MULTILINE))
    packages = [minillm, minillm.accounting.ledgers, minillm.batch, minillm.contrib.django, minillm.contrib.otel]
    packages += [minillm.engines, minillm.serve, minillm.testing]
    public = {
        f"{package.__name__}.{name}"
        for package in packages
        for name in package.__all__
        # a name minillm itself exports is documented there, once
        if package is minillm or name not in minillm.__all__
    }
    assert documented == public


def test_the_subpackages_export_exactly_their_public_attributes() -> None:
    import minillm.accounting.ledgers
    import minillm.batch
    import minillm.contrib.django
    import minillm.engines
    import minillm.serve
    import minillm.testing

    packages = (minillm.accounting.ledgers, minillm.contrib.django, minillm.engines, minillm.serve, minillm.testing)
    for package in packages:
        for name in package.__all__:
            getattr(package, name)  # some are imported on first use
        public = {
            name
            for name, value in vars(package).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
        }
        assert set(package.__all__) == public, package.__name__


def test_a_module_exports_what_it_defines_for_users() -> None:
    import minillm.batch

    defined = {
        name
        for name, value in vars(minillm.batch).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == minillm.batch.__name__
    }
    assert set(minillm.batch.__all__) == defined


def test_a_client_of_another_provider_never_loads_a_platforms_credential_library() -> None:
    code = "minillm.Client('openai/gpt-test', api_key='k', base_url='http://127.0.0.1:9').close()"
    assert loaded_after(code, "google.auth", "botocore", "minillm.providers.vertex") == []


def test_a_vertex_client_with_a_token_never_loads_google_auth() -> None:
    code = "minillm.Client('vertex/gemini-2.5-flash', api_key='ya29.t', base_url='http://127.0.0.1:9').close()"
    assert loaded_after(code, "google.auth", "minillm.providers.vertex") == ["minillm.providers.vertex"]


def documented_params(function: Any) -> List[str]:
    return re.findall(r"^\s*:param (\w+):", function.__doc__ or "", re.MULTILINE)


@pytest.mark.parametrize("method", ["complete", "stream"])
def test_every_parameter_of_a_call_is_described(method: str) -> None:
    function = getattr(minillm.Client, method)
    parameters = [name for name in inspect.signature(function).parameters if name != "self"]
    assert documented_params(function) == parameters


def test_the_client_docstring_names_every_key_variable_and_every_api() -> None:
    from minillm.providers import APIS

    doc = minillm.Client.__doc__ or ""
    for provider in APIS:
        for adapter in APIS[provider]:
            for variable in adapter.key_env:
                assert f"``{variable}``" in doc, (provider, variable)
            assert f'``"{adapter.api}"``' in doc, (provider, adapter.api)
