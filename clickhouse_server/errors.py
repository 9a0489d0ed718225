"""ClickHouse error texts, codes and the HTTP statuses clickhouse-server uses for them.

chDB raises ClickHouse's own exceptions as text ("Code: 60. DB::Exception: ... (UNKNOWN_TABLE)"),
sometimes nested or prefixed by the Python wrapper; we parse them back into (code, name, message)
and render them as clickhouse-server's HTTP handler does. Codes checked against the engine's
errorCodeToName().
"""
from __future__ import annotations

import re

CANNOT_PARSE_TEXT = 6
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
LOGICAL_ERROR = 49
SYNTAX_ERROR = 62
UNKNOWN_COMPRESSION_METHOD = 89
UNKNOWN_SETTING = 115
READONLY = 164
QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING = 216
QUERY_IS_TOO_LARGE = 229
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
AUTHENTICATION_FAILED = 516
UNKNOWN_EXCEPTION = 1002

NAMES = {
    CANNOT_PARSE_TEXT: "CANNOT_PARSE_TEXT", BAD_ARGUMENTS: "BAD_ARGUMENTS", NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    LOGICAL_ERROR: "LOGICAL_ERROR", SYNTAX_ERROR: "SYNTAX_ERROR",
    UNKNOWN_COMPRESSION_METHOD: "UNKNOWN_COMPRESSION_METHOD", UNKNOWN_SETTING: "UNKNOWN_SETTING",
    READONLY: "READONLY", QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING: "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING",
    QUERY_IS_TOO_LARGE: "QUERY_IS_TOO_LARGE", CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND", SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT", AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    UNKNOWN_EXCEPTION: "UNKNOWN_EXCEPTION",
}

# Mirrors src/Server/HTTP/exceptionCodeToHTTPStatus.cpp; every other code is a 500
# (including READONLY and SESSION_IS_LOCKED, as in clickhouse-server).
_STATUS = {
    194: 401,  # REQUIRED_PASSWORD
    **dict.fromkeys((192, 193, 516, 512, 497), 403),  # UNKNOWN_USER WRONG_PASSWORD AUTHENTICATION_FAILED ...
    **dict.fromkeys((36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8, 167, 168,
                     223, 62, 117, 53, 321), 400),  # BAD_ARGUMENTS, CANNOT_PARSE_*, SYNTAX_ERROR, TYPE_MISMATCH ...
    **dict.fromkeys((60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511), 404),  # UNKNOWN_*
    229: 413,  # QUERY_IS_TOO_LARGE
    48: 501,  # NOT_IMPLEMENTED
    209: 503, 76: 503, 439: 503,  # SOCKET_TIMEOUT, CANNOT_OPEN_FILE, CANNOT_SCHEDULE_TASK
    381: 411,  # HTTP_LENGTH_REQUIRED
    159: 408,  # TIMEOUT_EXCEEDED
    779: 415,  # UNSUPPORTED_MEDIA_TYPE
}

_CODE_RE = re.compile(r"Code: (\d+)\. DB::Exception: ")
_TAIL_RE = re.compile(r"(?:\s*\((?:version [^)]*|[A-Z][A-Z0-9_]+)\)\.?)+\s*$")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")

VERSION = "unknown"  # the engine's version(), set at startup
EXCEPTION_TAG_LENGTH = 16
# 16 KiB for the block, less its markers, tags, CRLFs and the 8 digits of the length
_MAX_STREAM_MESSAGE = 16 * 1024 - (2 + 13 + 2 + EXCEPTION_TAG_LENGTH + 2 + 8 + 1 + EXCEPTION_TAG_LENGTH + 2 + 13 + 2)


class ClickHouseError(Exception):
    def __init__(self, code: int, message: str, name: str | None = None):
        super().__init__(message)
        self.code = code
        self.name = name or NAMES.get(code, "UNKNOWN_EXCEPTION")
        self.message = message
        self.status = _STATUS.get(code, 500)

    def text(self) -> str:
        return f"Code: {self.code}. DB::Exception: {self.message} ({self.name}) (version {VERSION})\n"

    def in_stream(self, tag: str) -> bytes:
        """The block clickhouse-server (25.11+, WriteBufferFromHTTP1ServerResponse::cancelWithException)
        writes when a query fails after the response has started; `tag` is the response's
        X-ClickHouse-Exception-Tag. The whole block is at most 16 KiB, so the message is cut to fit."""
        msg = self.text().encode()[:_MAX_STREAM_MESSAGE]
        if not msg.endswith(b"\n"):
            msg += b"\n"
        t = tag.encode()
        return b"\r\n__exception__\r\n" + t + b"\r\n" + msg + b"%d " % len(msg) + t + b"\r\n__exception__\r\n"


def from_engine(exc: BaseException) -> ClickHouseError:
    """Turn a chDB exception into a ClickHouseError (first code, innermost message, last name)."""
    if isinstance(exc, ClickHouseError):
        return exc
    text = str(exc)
    m = _CODE_RE.search(text)
    if not m:
        return ClickHouseError(UNKNOWN_EXCEPTION, text.strip() or type(exc).__name__)
    names = _NAME_RE.findall(text)
    body = text[m.start():]
    while (inner := _CODE_RE.match(body)) is not None:  # "Code: N. DB::Exception: Code: N. ..."
        body = body[inner.end():]
    while (tail := _TAIL_RE.search(body)) is not None and tail.start() > 0:  # "(NAME) (version X). (NAME)"
        body = body[: tail.start()]
    return ClickHouseError(int(m.group(1)), body.strip(), names[-1] if names else None)
