"""chDB wrapper: owns the data directory and runs every blocking engine call.

Facts measured on chdb 4.4 that shape this module:
  * one process may open one data path; inside it, chdb.connect(path) may be called any number
    of times (~0.1 ms each) and every connection has its OWN settings, current database and
    temporary tables, while tables are shared. So a connection is exactly a ClickHouse session.
  * queries release the GIL, so connections run concurrently on worker threads.
  * a connection runs one statement at a time; send_query()/send_insert() stream results/input.
A base connection stays open for the life of the process so the embedded server is not torn
down between requests; closing it last (on SIGTERM) shuts the engine down cleanly.
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field

import chdb

from . import errors, formats, native, sqltext

# One worker call fetches ~4 MiB of chDB's stream chunks (one per block: 64 KiB to a few MiB).
# They are written as they are: joining them into one buffer cost more than it saved once the
# next batch is fetched while this one is written (measured on 64 KiB and 600 KiB chunks).
BATCH_BYTES = 4 << 20


class DataDirLocked(Exception):
    pass


@dataclass
class Stats:
    """Numbers for X-ClickHouse-Summary."""
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0

    def add_result(self, res) -> None:
        self.result_rows += res.rows_read()
        self.result_bytes += res.bytes_read()
        self.read_rows += res.storage_rows_read()
        self.read_bytes += res.storage_bytes_read()
        self.written_rows += res.rows_written()
        self.written_bytes += res.bytes_written()


@dataclass
class Output:
    """A result: `chunks` are memoryviews (kept alive by `_keep`); `stream` has more to fetch."""
    chunks: list = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    stream: object | None = None
    _keep: list = field(default_factory=list)


class Engine:
    def __init__(self, data_dir: str, max_memory_percent: int = 40):
        os.makedirs(data_dir, exist_ok=True)
        # chDB refuses a second process only with an obscure error (or not at all); take an
        # advisory lock so the second server stops with one clear line.
        self._lock_fd = os.open(os.path.join(data_dir, ".clickhouse_server.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DataDirLocked(f"another process already owns the chDB data directory {data_dir}") from None
        # chDB's default bound is 90% of RAM, as if it were alone on the machine; beside the stack's other
        # services a 1M-customer dbt build grew it past what was free and the kernel killed it. Under
        # this bound, big GROUP BYs, sorts and joins spill to disk (ClickHouse's
        # max_bytes_ratio_before_external_* settings) and a query that still does not fit fails alone
        # with MEMORY_LIMIT_EXCEEDED.
        self.data_dir = data_dir
        self._dsn = f"{data_dir}?max_server_memory_usage_to_ram_ratio={max_memory_percent / 100}"
        self._base = chdb.connect(self._dsn)
        row = bytes(self._base.query("SELECT version(), timezone()", "TabSeparated").bytes()).decode()
        self.version, self.timezone = row.rstrip("\n").split("\t")
        errors.VERSION = self.version

    def connect(self):
        return chdb.connect(self._dsn)

    def close(self) -> None:
        if self._base is not None:
            self._base.close()
            self._base = None
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)


# ---- calls below run on worker threads ----------------------------------------------------

def _run(conn, sql: str | bytes, fmt: str = "TabSeparated", params: dict | None = None):
    try:
        return conn.query(sql, fmt, params=params or {})
    except Exception as exc:  # chDB raises ChdbError/RuntimeError carrying ClickHouse's text
        raise errors.from_engine(exc) from None


def prepare(conn, readonly: bool, settings: dict[str, str], database: str | None) -> None:
    """Apply per-request state: readonly first (so URL settings cannot lift it), then settings."""
    if readonly:
        _run(conn, "SET readonly = 2")
    if settings:
        _run(conn, "SET " + ", ".join(f"{k} = {sqltext.quote_string(v)}" for k, v in settings.items()))
    if database:
        use(conn, database)


def binary_types_begin(conn, settings: dict[str, str], in_session: bool) -> bool:
    """Make chDB write Native types binary-encoded (see native.py); returns whether the client had
    asked for that itself (then the output keeps them binary, as clickhouse-server's would)."""
    name = native.BINARY_TYPES_SETTING
    user = False  # a fresh connection has the default
    if name in settings:  # the URL parameter; applied here, so the engine validates it
        _run(conn, f"SET {name} = {sqltext.quote_string(settings[name])}")
    if in_session or name in settings:
        user = bytes(_run(conn, f"SELECT getSetting('{name}')").bytes()).strip() == b"true"
    _run(conn, f"SET {name} = 1")
    return user


def binary_types_end(conn) -> None:
    _run(conn, f"SET {native.BINARY_TYPES_SETTING} = 0")


def use(conn, database: str) -> None:
    _run(conn, "USE " + sqltext.quote_identifier(database))


def current_database(conn) -> str:
    return bytes(_run(conn, "SELECT currentDatabase()").bytes()).decode().rstrip("\n")


def fetch_batch(out: Output, limit: int = BATCH_BYTES) -> Output:
    """Pull stream chunks until `limit` bytes are buffered or the stream ends."""
    out.chunks, out._keep = [], []
    size = 0
    while size < limit:
        try:
            res = out.stream.fetch()
        except Exception as exc:
            out.stream = None
            raise errors.from_engine(exc) from None
        if res is None:
            out.stream = None
            break
        out.stats.add_result(res)
        view = res.get_memview().view()
        out._keep.append(res)
        out.chunks.append(view)
        size += len(view)
    return out


def execute(conn, sql: bytes, fmt: str, params: dict[str, str], stream: bool, first_batch: int) -> Output:
    """Run a query (bytes: chDB takes them as they are). With `stream` (the caller checked that
    it is a SELECT) row-by-row formats are streamed, the first batch once `first_batch` bytes are
    buffered; everything else is buffered once."""
    out = Output()
    if stream and formats.streamable(fmt):
        try:
            out.stream = conn.send_query(sql, fmt, params=params)
        except Exception as exc:
            err = errors.from_engine(exc)
            if "Streaming query is not supported" not in err.message:
                raise err from None
        else:
            return fetch_batch(out, first_batch)
    res = _run(conn, sql, fmt, params)
    out.stats.add_result(res)
    if res.size():
        out._keep.append(res)
        out.chunks.append(res.get_memview().view())
    return out


def cancel(out: Output) -> None:
    if out.stream is not None:
        try:
            out.stream.cancel()
        except Exception:
            pass
        out.stream = None


def insert_begin(conn, head: str, fmt: str):
    try:
        return conn.send_insert(head, fmt)
    except Exception as exc:
        raise errors.from_engine(exc) from None


def insert_append(ins, data: bytes) -> None:
    try:
        ins.append(data)
    except Exception as exc:
        raise errors.from_engine(exc) from None


def insert_finish(ins) -> Stats:
    try:
        res = ins.finish()
    except Exception as exc:
        raise errors.from_engine(exc) from None
    return Stats(written_rows=res.rows_written, written_bytes=res.bytes_written)


def insert_cancel(ins) -> None:
    try:
        ins.cancel()
    except Exception:
        pass
