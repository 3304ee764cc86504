"""Start and stop a throw-away PostgreSQL + PostGIS cluster for the tests.

``python scripts/pg_cluster.py start DIR`` runs ``initdb`` into ``DIR/data``, starts the server on
a unix socket in ``DIR`` and a free TCP port on 127.0.0.1 (as the ``postgres`` user when run as
root: the server refuses root), creates the database ``spatialplan_test`` with the PostGIS
extension and a role ``reader`` (password ``reader-secret``, for the password tests over TCP)
and prints the connection URL (unix socket, no password). ``stop DIR`` stops it. The tests'
conftest uses :func:`start` and :func:`stop` directly when ``SPATIALPLAN_TEST_PG`` is not set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

DB = "spatialplan_test"
READER_PASSWORD = "reader-secret"  # noqa: S105 - a throw-away test cluster's role


def bindir() -> Path:
    """Return the folder of ``initdb`` and ``pg_ctl`` (``pg_config --bindir``, else Debian's)."""
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (cand / "initdb").is_file():
            return cand
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                             check=False).stdout.strip()
        if out and (Path(out) / "initdb").is_file():
            return Path(out)
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: install "
                       "postgresql-15 and postgresql-15-postgis-3")


def _run(cmd: list[str], *, check: bool = True) -> None:
    """Run a server program as its owner, from ``/`` (a folder the postgres user may enter)."""
    done = subprocess.run(_as_owner(cmd), check=False, capture_output=True, text=True, cwd="/")
    if check and done.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-2000:]}")


def _as_owner(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as ``postgres`` when we are root (the server refuses to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _psql(bin_: Path, folder: Path, port: int, sql: str, db: str = "postgres") -> None:
    _run([str(bin_ / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(folder),
          "-p", str(port), "-U", "postgres", "-d", db, "-c", sql])


def start(folder: str | Path) -> str:
    """Start a cluster in ``folder`` (created); return its unix-socket connection URL."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
        folder.chmod(0o755)
    bin_ = bindir()
    data = folder / "data"
    _run([str(bin_ / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
          "--no-locale"])
    with (data / "pg_hba.conf").open("w") as fh:
        fh.write("local all all trust\nhost all reader 127.0.0.1/32 scram-sha-256\n")
    port = _free_port()
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
            " -c fsync=off -c full_page_writes=off")
    _run([str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", opts,
          "-w", "start"])
    (folder / "port").write_text(str(port))
    _psql(bin_, folder, port, f"CREATE DATABASE {DB}")
    _psql(bin_, folder, port, "CREATE EXTENSION postgis", db=DB)
    _psql(bin_, folder, port, f"CREATE ROLE reader LOGIN PASSWORD '{READER_PASSWORD}';"
          f"GRANT ALL ON DATABASE {DB} TO reader", db=DB)
    _psql(bin_, folder, port, "GRANT ALL ON SCHEMA public TO reader", db=DB)
    return f"postgresql://postgres@/{DB}?host={folder}&port={port}"


def stop(folder: str | Path) -> None:
    """Stop the cluster started in ``folder`` (nothing if none runs there)."""
    data = Path(folder).resolve() / "data"
    if (data / "postmaster.pid").exists():
        _run([str(bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
             check=False)


def main(argv: list[str]) -> int:
    """Command line: ``start DIR`` (prints the URL) or ``stop DIR``."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        sys.stderr.write("usage: pg_cluster.py start|stop DIR\n")
        return 2
    if argv[0] == "start":
        sys.stdout.write(start(argv[1]) + "\n")
    else:
        stop(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
