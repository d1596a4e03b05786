"""A throwaway PostgreSQL server on 127.0.0.1 for the ledger tests.

It is made from the machine's PostgreSQL binaries (Debian's ``postgresql``
package; ``.ci/run`` installs it) in a temporary directory, with
durability switched off for speed, and removed afterwards. As root (CI
containers), the server runs as the ``postgres`` user, since PostgreSQL
refuses to run as root. ``MINILLM_TEST_POSTGRES`` names a server to use
instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from typing import Any, Dict, Optional, Tuple


def _binaries() -> Optional[str]:
    """The directory of ``initdb`` and ``pg_ctl``, newest version first."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version, reverse=True)
    return os.path.dirname(candidates[0]) if candidates else None


def _version(path: str) -> Tuple[int, ...]:
    part = path.split("/")[4]
    return tuple(int(p) for p in part.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """A PostgreSQL server of our own; :meth:`start` it, :meth:`stop` it."""

    def __init__(self, bindir: str, root: str, user: Optional[pwd.struct_passwd]) -> None:
        self.bindir = bindir
        self.root = root
        self.user = user
        self.data = os.path.join(root, "data")
        self.port = _free_port()

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=minillm dbname=postgres connect_timeout=10"

    @classmethod
    def start(cls) -> Tuple[Optional[LocalPostgres], str]:
        """A running server, or None and why there is none."""
        bindir = _binaries()
        if bindir is None:
            return None, "no PostgreSQL server binaries (initdb, pg_ctl) on this machine: apt-get install postgresql"
        user = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                return None, "running as root and there is no 'postgres' user to run the server as"
        root = tempfile.mkdtemp(prefix="minillm-pg-")
        server = cls(bindir, root, user)
        try:
            server._run("initdb", "-D", server.data, "-U", "minillm", "--auth=trust", "-E", "UTF8", "--no-sync")
            options = (
                f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            server._run("pg_ctl", "-D", server.data, "-o", options, "-l", os.path.join(root, "log"), "-w", "start")
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            server._remove()
            return None, f"the PostgreSQL server would not start: {exc} {detail}".strip()
        return server, ""

    def _run(self, program: str, *args: str) -> None:
        kwargs: Dict[str, Any] = {}
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
            kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        subprocess.run(
            [os.path.join(self.bindir, program), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            **kwargs,
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        except (OSError, subprocess.CalledProcessError):
            pass
        self._remove()

    def _remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
