"""The ASGI application: ClickHouse's HTTP interface on top of engine.py.

Request semantics follow clickhouse-server's HTTPHandler: the query is the `query` URL parameter
plus "\n" plus the body; URL parameters that are not reserved are settings; `param_<name>` fill
{name:Type} placeholders (in a multipart/form-data body, `query` and `param_<name>` may also be
form fields, see form.py); GET requests are readonly; errors are ClickHouse's text with the
status from exceptionCodeToHTTPStatus. The event loop only parses and shuffles bytes; every chDB
call runs on a worker thread, so /ping and short queries are never stuck behind long ones.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

from . import auth, engine, errors, form, formats, native, sessions, sqltext
from .body import Body
from .config import Config
from .errors import ClickHouseError

log = logging.getLogger("clickhouse_server")

# URL parameters clickhouse-server's HTTP handler does not treat as settings.
RESERVED = {
    "query", "compress", "decompress", "user", "password", "quota_key", "query_id", "stacktrace", "role",
    "buffer_size", "wait_end_of_query", "session_id", "session_timeout", "session_check",
    "client_protocol_version", "close_session", "database", "default_format",
}
INSERT_BATCH = 4 << 20  # hand request bodies to chDB in ~4 MiB pieces
# clickhouse-server holds the first DBMS_DEFAULT_BUFFER_SIZE (1 MiB) of a result before it sends
# the status line: an error within it is a plain HTTP error, a later one an in-stream block.
RESPONSE_BUFFER = 1 << 20
HEAD_BYTES = 64 << 10  # an INSERT's SQL must start within the body's first 64 KiB
_TRUE = {"1", "true", "yes", "on"}
_BODY_INSERT = re.compile(rb"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)[ \t]*(?:\r?\n)?", re.I)
_BINARY_TYPES_IN_SQL = re.compile(r"\bSETTINGS\b.*\b" + native.BINARY_TYPES_SETTING + r"\b", re.I | re.S)


def _h(name: str, value: str) -> tuple[bytes, bytes]:
    return name.encode("latin-1"), value.encode("latin-1", "replace")


class App:
    def __init__(self, cfg: Config, eng: engine.Engine):
        self.cfg = cfg
        self.engine = eng
        self.sessions = sessions.Sessions(eng.connect)
        self.pool = ThreadPoolExecutor(cfg.workers, thread_name_prefix="chdb")
        self.running: set[str] = set()
        self.display_name = socket.gethostname()
        self._reaper: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # ---- lifecycle ------------------------------------------------------------------------

    async def _lifespan(self, receive, send):
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self._reaper = asyncio.create_task(self._reap())
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self._reaper.cancel()
                # uvicorn has already drained in-flight requests; close sessions, then the engine.
                await self._call(lambda conns: [c.close() for c in conns], self.sessions.close_all())
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.engine.close()
                log.info("chDB closed cleanly")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _reap(self):
        while True:
            await asyncio.sleep(1)
            closing = self.sessions.expire()
            if closing:
                await self._call(lambda conns: [c.close() for c in conns], closing)

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # ---- HTTP -----------------------------------------------------------------------------

    def _common(self, query_id: str) -> list:
        return [_h("X-ClickHouse-Server-Display-Name", self.display_name), _h("X-ClickHouse-Query-Id", query_id),
                _h("X-ClickHouse-Timezone", self.engine.timezone)]

    async def _plain(self, send, status: int, text: str, headers=()):
        data = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [_h("Content-Type", "text/plain; charset=UTF-8"),
                                _h("Content-Length", str(len(data))), *headers]})
        await send({"type": "http.response.body", "body": data})

    async def _http(self, scope, receive, send):
        path, method = scope["path"], scope["method"]
        if path in ("/ping", "/replicas_status") and method in ("GET", "HEAD"):
            return await self._plain(send, 200, "Ok.\n")
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        common = self._common(query_id)
        if path != "/":
            return await self._plain(send, 404, f"There is no handle {path}\n\nUse / or /ping for health checks.\n")
        if method == "GET" and "query" not in params:
            return await self._plain(send, 200, "Ok.\n")
        if method not in ("GET", "POST"):
            return await self._plain(send, 405, f"Method {method} is not allowed\n")
        started = time.monotonic_ns()
        responded = False

        async def tracked_send(msg):
            nonlocal responded
            responded = responded or msg["type"] == "http.response.start"
            await send(msg)

        try:
            if query_id in self.running:
                raise ClickHouseError(errors.QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING,
                                      f"Query with id = {query_id} is already running.")
            self.running.add(query_id)
            try:
                await self._query(scope, receive, tracked_send, params, query_id, common, started)
            finally:
                self.running.discard(query_id)
        except ConnectionAbortedError:
            return
        except Exception as exc:
            if not isinstance(exc, ClickHouseError):
                log.exception("unexpected error in query %s", query_id)
            err = errors.from_engine(exc)
            log.info("query %s failed: %s", query_id, err.text().rstrip())
            if not responded:
                await self._plain(send, err.status, err.text(),
                                  [*common, _h("X-ClickHouse-Exception-Code", str(err.code))])

    async def _query(self, scope, receive, send, params, query_id, common, started):
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s params=%s content-encoding=%s accept-encoding=%s", scope["method"], query_id,
                      {k: v for k, v in params.items() if k != "password"}, headers.get("content-encoding"),
                      headers.get("accept-encoding"))
        user = auth.authenticate(self.cfg.users, headers, params)
        try:
            await self._run(scope, receive, send, params, query_id, common, started, headers, user)
        except ClickHouseError as err:
            # chDB executes everything as its single user 'default'; name the real user as ClickHouse would
            if err.message.startswith("default: ") and user.name != "default":
                err.message = user.name + err.message[7:]
            raise

    async def _run(self, scope, receive, send, params, query_id, common, started, headers, user):
        for p in ("compress", "decompress"):
            if params.get(p, "0") in _TRUE:
                raise ClickHouseError(errors.NOT_IMPLEMENTED,
                                      f"'{p}=1' (ClickHouse's own block compression) is not supported by this "
                                      "chDB-backed server; use HTTP Content-Encoding / Accept-Encoding instead")
        # A multipart/form-data body holds the query and param_<name> fields (form.py). As in
        # clickhouse-server, URL parameters ending in _format/_types/_structure are then not settings
        # (they would describe external tables), and the body is not appended to the query.
        ctype = headers.get("content-type", "")
        is_form = scope["method"] == "POST" and form.is_multipart(ctype)
        settings = {k: v for k, v in params.items() if k not in RESERVED and not k.startswith("param_")
                    and not (is_form and k.endswith(form.EXTERNAL_SUFFIXES))}
        for name in settings:
            if not sqltext.is_identifier(name):
                raise ClickHouseError(errors.UNKNOWN_SETTING, f"Unknown setting '{name}'")
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        # Native output is framed for this client protocol revision (clickhouse-go sends 54460).
        revision = native.requested_revision(params.get("client_protocol_version"))
        clen = headers.get("content-length")
        body = Body(receive, headers.get("content-encoding", ""), self.cfg.max_body_bytes,
                    int(clen) if clen and clen.isdigit() else None)

        # Plan: stream the body into an INSERT (data after `FORMAT X`, in the URL query or at the
        # start of the body), or read the whole body and run query + "\n" + body as SQL. The SQL
        # stays bytes, as clickhouse-server reads it: a binary literal reaches the engine unchanged.
        q = params.get("query", "")
        sql = _url_query(q, scope["query_string"])
        insert, data = None, b""
        if is_form:
            # clickhouse-server's DynamicQueryHandler::getQuery: the query is every `query` value, the
            # URL's first, joined without a separator; a param_<name> already set (by the URL, or by an
            # earlier field) wins; other fields are ignored (settings come from the URL only).
            fields = await form.read_fields(body, ctype)
            sql += b"".join(v for k, v in fields if k == "query")
            for k, v in fields:
                if k.startswith("param_"):
                    query_params.setdefault(k[6:], v.decode("utf-8", "replace"))
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s form fields: %s", query_id, [(k, len(v)) for k, v in fields])
        elif scope["method"] == "POST":
            insert = sqltext.split_insert(q) if q else None
            if insert is None:
                head = await body.read_head(HEAD_BYTES)
                if head:
                    joined = (sql + b"\n" + head) if sql else head
                    insert, data = _split_body_insert(joined)
                    if insert is None:
                        sql = joined + await body.read_all()
        text = sql.decode("latin-1")  # for keyword inspection only (sqltext.py)
        if insert is None:
            if not text.strip():
                raise ClickHouseError(errors.SYNTAX_ERROR, "Empty query")
            statement = sqltext.access_statement(text)
            if statement:
                raise auth.access_management(statement)

        sess = None
        sid = params.get("session_id")
        if sid:
            timeout = sessions.parse_timeout(params.get("session_timeout"))
            sess = self.sessions.acquire(user.name, sid, timeout, params.get("session_check", "0") in _TRUE)
            conn = sess.conn
            readonly = user.readonly and not sess.readonly_applied
            if scope["method"] == "GET" and not user.readonly and not sqltext.is_read_only(text):
                # readonly=2 cannot be lifted again, so a GET in a session is checked instead of SET.
                self.sessions.release(sess)
                raise ClickHouseError(errors.READONLY, f"{user.name}: Cannot execute query in readonly mode")
        else:
            conn = self.engine.connect()
            readonly = user.readonly or scope["method"] == "GET"
        close = params.get("close_session", "0") in _TRUE
        kind = "INSERT" if insert is not None else sqltext.kind(text)
        # statements without a result set get no output format, hence no X-ClickHouse-Format
        fmt = (sqltext.output_format(text) or params.get("default_format") or "TabSeparated") \
            if insert is None and sqltext.has_result(text) else None
        reframe = bool(revision) and fmt is not None and fmt.lower() == "native"
        database = params.get("database") or None
        restore = []  # the session connection whose type-encoding setting is reset after the query
        settle = [sess] if sess is not None and (database or kind == "USE") else []

        def done(ok: bool = True):
            # runs as soon as the result is complete, before its last bytes are sent (the client
            # may send the session's next request the moment it has them all), or after a failure
            while restore:
                engine.binary_types_end(restore.pop())
            while settle:
                _settle_database(settle.pop(), conn, database, kind == "USE" and ok)

        try:
            tc = None
            if reframe:
                if _BINARY_TYPES_IN_SQL.search(text):
                    raise ClickHouseError(errors.NOT_IMPLEMENTED,
                                          f"{native.BINARY_TYPES_SETTING} in the query's SETTINGS cannot be combined "
                                          "with client_protocol_version > 0 by this chDB-backed server; set it as a "
                                          "URL parameter instead")
                # chDB encodes Native for revision 0: have it write binary-encoded types (exact, time
                # zones included) and re-frame its output for the client's revision. Done before the
                # URL settings, as a readonly=1 among them would forbid this SET.
                user_binary = await self._call(engine.binary_types_begin, conn, settings, sess is not None)
                tc = native.Transcoder(revision, user_binary)
                if sess is not None and not user_binary:
                    restore.append(conn)
                settings = {k: v for k, v in settings.items() if k != native.BINARY_TYPES_SETTING}
            await self._call(engine.prepare, conn, readonly, settings, database)
            if sess is not None and readonly:
                sess.readonly_applied = True
            if insert is not None:
                await self._insert(send, conn, body, insert, data, common, started, done)
            else:
                stream = params.get("wait_end_of_query", "0") not in _TRUE and kind in ("SELECT", "WITH")
                await self._select(receive, send, conn, sql, fmt, query_params, stream, common, started, tc, done)
        finally:
            if restore or settle:  # the query failed before its result was complete
                with contextlib.suppress(Exception):
                    await self._call(done, False)
            if sess is not None:
                self.sessions.release(sess, close)
            else:
                conn.close()

    async def _insert(self, send, conn, body: Body, insert, data: bytes, common, started, done):
        head, fmt = insert
        ins = await self._call(engine.insert_begin, conn, head, fmt)
        pending = None

        def feed(chunk: bytes, decoded: bool):
            chunk = chunk if decoded else body.decode(chunk)
            if chunk:
                engine.insert_append(ins, chunk)

        try:
            if data:
                await self._call(feed, data, True)
            buf, size = [], 0
            while True:
                raw = await body.next_raw()
                if raw:
                    buf.append(raw)
                    size += len(raw)
                if size >= INSERT_BATCH or (not raw and buf):
                    # one append in flight while the next batch is received (overlap network and parsing)
                    if pending is not None:
                        await pending
                    pending = asyncio.get_running_loop().run_in_executor(self.pool, feed, b"".join(buf), False)
                    buf, size = [], 0
                if not raw:
                    break
            if pending is not None:
                p, pending = pending, None
                await p
            stats = await self._call(engine.insert_finish, ins)
            await self._call(done)
        except BaseException:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await pending
            await self._call(engine.insert_cancel, ins)
            raise
        # as clickhouse-server: an INSERT has no result set, so no X-ClickHouse-Format
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*common, _h("Content-Type", "text/plain; charset=UTF-8"), _h("Content-Length", "0"),
                                _h("X-ClickHouse-Summary", _summary(stats, started))]})
        await send({"type": "http.response.body", "body": b""})

    async def _select(self, receive, send, conn, sql: bytes, fmt, query_params, stream, common, started, tc=None,
                      done=None):
        def run():
            out = engine.execute(conn, sql, fmt or "TabSeparated", query_params, stream, RESPONSE_BUFFER)
            if tc is not None:
                try:
                    _reframe(out, tc)
                except BaseException:
                    engine.cancel(out)
                    raise
            if out.stream is None and done is not None:
                done()
            return out

        def next_batch():
            engine.fetch_batch(out)
            if tc is not None:
                _reframe(out, tc)
            if out.stream is None and done is not None:
                done()

        out = await self._call(run)
        headers = [*common, _h("X-ClickHouse-Summary", _summary(out.stats, started))]
        if fmt is None:  # DDL, SET, USE, INSERT ... SELECT, ...: the summary is the answer
            headers.append(_h("Content-Type", "text/plain; charset=UTF-8"))
        else:
            headers += [_h("Content-Type", formats.content_type(fmt)), _h("X-ClickHouse-Format", fmt)]
        if out.stream is None:  # complete result: send with a Content-Length
            size = sum(len(c) for c in out.chunks)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*headers, _h("Content-Length", str(size))]})
            for i, chunk in enumerate(out.chunks):
                await send({"type": "http.response.body", "body": chunk, "more_body": i < len(out.chunks) - 1})
            if not out.chunks:
                await send({"type": "http.response.body", "body": b""})
            return
        # Streamed (chunked) result. Errors after the headers are written the way clickhouse-server
        # 25.11+ does (tagged block clients look for), then the connection is dropped so no client
        # can take a truncated result for a complete one.
        tag = uuid.uuid4().hex[:errors.EXCEPTION_TAG_LENGTH]
        gone = asyncio.Event()
        # uvicorn silently drops writes to a closed connection, so watch for the disconnect to stop
        # pulling rows from chDB for a client that is gone.
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, _h("X-ClickHouse-Exception-Tag", tag)]})
        pending = None
        try:
            while True:
                # this batch and the chDB results its memoryviews point into stay alive while written
                chunks, held = out.chunks, out._keep  # noqa: F841
                if out.stream is not None and not gone.is_set():
                    # chDB fetches the next batch while this one is written: engine and network overlap
                    pending = asyncio.get_running_loop().run_in_executor(self.pool, next_batch)
                for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if pending is None:
                    break
                p, pending = pending, None
                try:
                    await p
                except ClickHouseError as err:
                    await send({"type": "http.response.body", "body": err.in_stream(tag), "more_body": True})
                    log.info("query failed while streaming: %s", err.text().rstrip())
                    return  # response left incomplete on purpose: uvicorn closes the connection
            await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()
            if pending is not None:  # cancelled while a fetch ran: let it end before cancelling the stream
                with contextlib.suppress(BaseException):
                    await pending
            if out.stream is not None:
                await self._call(engine.cancel, out)


def _reframe(out: engine.Output, tc: native.Transcoder) -> None:
    """Replace a batch of chDB's Native output with the same blocks framed for the client's revision."""
    data = tc.feed(b"".join(out.chunks)) if out.chunks else b""
    if out.stream is None:  # the last batch
        data += tc.finish()
    out.chunks, out._keep = ([data] if data else []), []


def _url_query(q: str, query_string: bytes) -> bytes:
    """The `query` URL parameter's bytes. parse_qsl decoded it as UTF-8 and replaced invalid bytes
    with U+FFFD, so only then is it parsed again, byte for byte (latin-1 keeps every byte)."""
    if "\ufffd" not in q:
        return q.encode()
    raw = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="latin-1"))
    return raw["query"].encode("latin-1")


def _settle_database(sess: sessions.Session, conn, requested: str | None, used: bool) -> None:
    """After a session's request: a USE that succeeded changes the session's database; a
    `database` URL parameter applied to this request only, so the session's own comes back."""
    if used:
        sess.database = engine.current_database(conn)
    elif requested and requested != sess.database:
        try:
            engine.use(conn, sess.database)
        except ClickHouseError:  # the session's database was dropped meanwhile
            sess.database = "default"
            engine.use(conn, sess.database)


def _split_body_insert(joined: bytes):
    """An INSERT whose data follows `FORMAT X` inside the body: split SQL head and raw data."""
    head = joined[:HEAD_BYTES]
    if sqltext.kind(head.decode("latin-1")) != "INSERT":
        return None, b""
    m = _BODY_INSERT.search(head)
    if not m:
        return None, b""  # e.g. INSERT ... VALUES (...) or INSERT ... SELECT: run as plain SQL
    return (head[:m.start()].decode("utf-8").rstrip(), m.group(1).decode()), joined[m.end():]


async def _watch_disconnect(receive, gone: asyncio.Event):
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            gone.set()
            return


def _summary(stats: engine.Stats, started: int) -> str:
    return json.dumps({
        "read_rows": str(stats.read_rows), "read_bytes": str(stats.read_bytes),
        "written_rows": str(stats.written_rows), "written_bytes": str(stats.written_bytes),
        "total_rows_to_read": str(stats.read_rows), "result_rows": str(stats.result_rows),
        "result_bytes": str(stats.result_bytes), "elapsed_ns": str(time.monotonic_ns() - started),
    }, separators=(",", ":"))
