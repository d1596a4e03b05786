"""Optional dependencies: importing one on first use, or saying which
extra installs it.

Each optional package belongs to one extra of ``setup.cfg``
(:data:`EXTRAS`). Code that needs one imports it through :func:`require`,
so that a missing package is a :class:`~minillm.ConfigurationError` naming
the command that installs it -- never a bare ``ModuleNotFoundError`` from
deep inside a call. Features that work without theirs (a progress bar, the
price catalog) import it themselves and carry on without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigurationError

__all__ = ["EXTRAS", "install_hint", "require"]

#: The extra that installs each optional package, by its top-level module.
EXTRAS = {
    "psycopg": "postgres",
    "tqdm": "batch",
    "google.auth": "vertex",
    "botocore": "bedrock",
    "genai_prices": "prices",
    "dask": "cluster",
    "opentelemetry": "otel",
}

#: How a package is named in a message, where its module's name does not say.
_NAMES = {"psycopg": "psycopg 3", "google.auth": "google-auth", "genai_prices": "genai-prices"}


def install_hint(module: str) -> str:
    """The command that installs ``module``: ``pip install "minillm[EXTRA]"``."""
    return f'pip install "minillm[{EXTRAS[module]}]"'


def require(module: str, *, what: str) -> Any:
    """Import ``module`` (a key of :data:`EXTRAS`, or a submodule of one) for ``what``.

    :raises ConfigurationError: it is not installed; the message names the
        extra to install.
    """
    top = next(name for name in EXTRAS if module == name or module.startswith(name + "."))
    try:
        # The package first: a submodule already imported is found even
        # when the package itself is blocked.
        importlib.import_module(top)
        return importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(f"{what} needs {_NAMES.get(top, top)}: {install_hint(top)}") from None
