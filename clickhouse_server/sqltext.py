"""The little SQL inspection the HTTP layer needs (everything else is left to the engine).

We never rewrite queries; we only look at the first keywords (to pick streaming vs. buffered
execution, to enforce GET-is-read-only inside sessions, to tell statements with a result set
from those answered by a summary, and to refuse access-management statements) and at a
trailing FORMAT/VALUES clause (to stream an INSERT's body into the engine instead of
concatenating it into the SQL). SQL that arrives as bytes is inspected as its latin-1 decoding,
which maps every byte to one character, so keywords are found and nothing is lost.
"""
from __future__ import annotations

import re

_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.S)
_WORD = re.compile(r"[A-Za-z_]+")
_INSERT_FORMAT = re.compile(r"^(?P<head>.*?)\bFORMAT\s+(?P<fmt>[A-Za-z][A-Za-z0-9_]*)\s*$", re.S | re.I)
_INSERT_VALUES = re.compile(r"^(?P<head>.*?)\bVALUES\s*$", re.S | re.I)
_OUTPUT_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z][A-Za-z0-9_]*)\s*;?\s*$", re.I)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Statements allowed by a GET request inside a session (readonly=2 semantics, see sessions.py).
_READ_KINDS = {"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "SET", "USE", "CHECK"}
# Statements whose pipeline pulls a result set: only these get X-ClickHouse-Format from
# clickhouse-server (executeQuery sets the format for a pulling pipeline only); DDL, SET, USE,
# INSERT, SYSTEM, ... are answered with an empty body and the X-ClickHouse-Summary alone.
_RESULT_KINDS = {"SELECT", "WITH", "FROM", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "CHECK", "KILL",
                 "WATCH", "BACKUP", "RESTORE"}
# Access management: the statements that create, change or assume users, roles, grants, row
# policies, quotas and settings profiles. `SET ROLE NONE|DEFAULT|ALL` is left to the engine,
# which accepts it (there are no roles to enable, so it changes nothing).
_ACCESS = re.compile(
    r"(?:(?:CREATE|ALTER|DROP)\s+(?:USER|ROLE|(?:ROW\s+|MASKING\s+)?POLICY|QUOTA|(?:SETTINGS\s+)?PROFILE)"
    r"|GRANT|REVOKE|SET\s+DEFAULT\s+ROLE|SET\s+ROLE(?!\s+(?:NONE|DEFAULT|ALL)\s*;?\s*$))\b", re.I)


def _start(sql: str) -> int:
    return _LEADING_NOISE.match(sql).end()


def first_keywords(sql: str, n: int = 2) -> list[str]:
    pos = _start(sql)
    words = []
    for m in _WORD.finditer(sql, pos):
        words.append(m.group(0).upper())
        if len(words) == n:
            break
    return words


def kind(sql: str) -> str:
    words = first_keywords(sql, 1)
    return words[0] if words else ""


def is_read_only(sql: str) -> bool:
    words = first_keywords(sql, 2)
    if not words:
        return True
    return words[0] in _READ_KINDS or words[:2] == ["CREATE", "TEMPORARY"]


def has_result(sql: str) -> bool:
    return kind(sql) in _RESULT_KINDS


def access_statement(sql: str) -> str | None:
    """'CREATE USER', 'GRANT', 'SET ROLE', ... for an access-management statement, else None."""
    m = _ACCESS.match(sql, _start(sql))
    return " ".join(m.group(0).upper().split()) if m else None


def split_insert(sql: str) -> tuple[str, str] | None:
    """'INSERT INTO t (a) FORMAT Native' -> ('INSERT INTO t (a)', 'Native'); VALUES -> 'Values'."""
    if kind(sql) != "INSERT":
        return None
    text = sql.rstrip()
    m = _INSERT_FORMAT.match(text)
    if m:
        return m.group("head").rstrip(), m.group("fmt")
    m = _INSERT_VALUES.match(text)
    if m:
        return m.group("head").rstrip(), "Values"
    return None


def output_format(sql: str) -> str | None:
    """The FORMAT clause at the end of a query, which overrides default_format."""
    m = _OUTPUT_FORMAT.search(sql[-200:])
    return m.group(1) if m else None


def is_identifier(name: str) -> bool:
    return bool(_IDENT.match(name))


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"
