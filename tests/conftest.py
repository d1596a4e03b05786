"""Shared fixtures. Every network test talks to a ScriptedServer on 127.0.0.1."""

from __future__ import annotations

import gc
import importlib
import os
import sys
import threading
from typing import Any, Callable, Iterator, List

import pytest

import minillm
from minillm.providers.openai_chat import SERVERS
from minillm.testing import ScriptedServer

PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENROUTER_API_KEY",
    "OPENROUTER_BASE_URL",
    "XAI_API_KEY",
    "XAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
    "OLLAMA_HOST",
    "DEEPSEEK_API_KEY",
    "DEEPSEEK_BASE_URL",
    "GROQ_API_KEY",
    "GROQ_BASE_URL",
    "MISTRAL_API_KEY",
    "MISTRAL_BASE_URL",
    "TOGETHER_API_KEY",
    "TOGETHER_BASE_URL",
    "FIREWORKS_API_KEY",
    "FIREWORKS_BASE_URL",
    "CEREBRAS_API_KEY",
    "CEREBRAS_BASE_URL",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_VERSION",
    "OPENAI_API_VERSION",
    # Bedrock, and the AWS credential chain botocore searches
    "AWS_BEARER_TOKEN_BEDROCK",
    "BEDROCK_BASE_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
)


@pytest.fixture(scope="session")
def _empty_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("isolated") / "empty"
    path.write_text("")
    return str(path)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, _empty_file: str) -> Iterator[None]:
    """No test sees the developer's keys (nor their AWS config and
    credentials files), loopback never goes through a proxy, botocore never
    asks an instance metadata address, and no test inherits what another
    taught the process about its server (scripted servers reuse ports)."""
    for name in (*PROVIDER_ENV, "MINILLM_LOG", "MINILLM_LOG_PROMPTS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "BOTO_CONFIG"):
        monkeypatch.setenv(name, _empty_file)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    # List prices change with each catalog release: tests that want them ask.
    monkeypatch.setenv("MINILLM_PRICE_CATALOG", "off")
    SERVERS.forget()
    yield
    SERVERS.forget()


@pytest.fixture(autouse=True, scope="session")
def _nothing_left_in_the_working_directory() -> Iterator[None]:
    """A test that runs the command line without ``--ledger`` writes the
    default ledger where it runs: into the checkout. Caught here."""
    before = set(os.listdir())
    yield
    left = sorted(name for name in set(os.listdir()) - before if name.startswith("minillm"))
    assert not left, f"the tests left {left} in {os.getcwd()}"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def ledger() -> minillm.Ledger:
    return minillm.Ledger()


class SleepRecorder:
    """Stands in for time.sleep in retry policies: records, never sleeps."""

    def __init__(self) -> None:
        self.calls: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_client(
    server: ScriptedServer, ledger: minillm.Ledger, sleeps: SleepRecorder
) -> Iterator[Callable[..., minillm.Client]]:
    """A client for the scripted server, booking into ``ledger``; retries never sleep."""
    made: List[minillm.Client] = []

    def make(model: str = "openai/test-model", **kwargs: Any) -> minillm.Client:
        kwargs.setdefault("base_url", server.url)
        kwargs.setdefault("on_cost", ledger)
        kwargs.setdefault("retry", minillm.RetryPolicy(sleep=sleeps))
        kwargs.setdefault("lookup", minillm.LookupPolicy(initial_delay=0.0, max_delay=0.01, timeout=5.0))
        if model.startswith("openrouter/"):
            kwargs.setdefault("api_key", "sk-or-test")
        client = minillm.Client(model, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.flush(timeout=10)
        client.close()


def import_or_skip(module: str, *, reason: str, required_by: str) -> Any:
    """``pytest.importorskip(module)`` -- except where the environment
    variable ``required_by`` is set (as CI sets it): there a missing module
    fails the run instead of skipping it, so a broken install cannot pass
    as a skip."""
    if not os.environ.get(required_by):
        return pytest.importorskip(module, reason=reason)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module} is required here ({required_by} is set): {exc}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server's DSN: ``MINILLM_TEST_POSTGRES``, else a throwaway
    one started from the machine's binaries. Without either the tests that
    need it are skipped, saying why -- or fail, under
    ``MINILLM_REQUIRE_POSTGRES`` (as in CI)."""
    given = os.environ.get("MINILLM_TEST_POSTGRES")
    if given:
        yield given
        return
    from .postgres_server import LocalPostgres

    server, why = LocalPostgres.start()
    if server is None:
        if os.environ.get("MINILLM_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {why}")
        pytest.skip(f"no PostgreSQL server for these tests: {why}")
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    """A DSN whose tables live in a schema of this test's own."""
    import uuid

    import psycopg

    schema = "t" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    yield f"{postgres_server} options='-csearch_path={schema}'"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


#: ``python -m minillm``, with Ctrl-C (SIGINT) raising KeyboardInterrupt even
#: when this test run was started with SIGINT ignored (a background job of a
#: non-interactive shell, ``nohup``): the child would inherit that.
MINILLM_COMMAND = [
    sys.executable,
    "-c",
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'minillm'; runpy.run_module('minillm', run_name='__main__', alter_sys=True)",
]


def finishes(action: Callable[[], Any], within: float = 10.0) -> None:
    """Run ``action`` on another thread and fail (instead of hanging the run)
    if it has not returned within ``within`` seconds -- a liveness check, not
    a measurement."""
    errors: List[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # pragma: no cover - re-raised below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), f"{action!r} was still blocked after {within}s"
    if errors:
        raise errors[0]


def collect_garbage() -> None:
    """Run the collector so finalizers of dropped objects have run, and wait
    until the streams they handed over are settled."""
    from minillm import runtime

    for _ in range(3):
        gc.collect()
    assert runtime.settler.wait(10), "dropped streams were still being settled after 10s"
