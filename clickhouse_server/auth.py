"""Users and credentials, accepted the three ways clickhouse-server accepts them.

X-ClickHouse-User/X-ClickHouse-Key headers, HTTP basic auth, or user/password URL parameters;
no credentials means user 'default' with an empty password. Failures are AUTHENTICATION_FAILED
(516), which clickhouse-server's HTTP handler answers with 403. The users are fixed by the
configuration, so SQL that would manage users, roles or grants is refused (access_management).
"""
from __future__ import annotations

import base64
import hmac

from . import errors
from .config import User
from .errors import ClickHouseError


def _basic(headers: dict[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    if value[:6].lower() != "basic ":
        return None
    try:
        user, _, password = base64.b64decode(value[6:].strip()).decode().partition(":")
    except Exception:
        raise ClickHouseError(errors.AUTHENTICATION_FAILED, "Invalid authentication: malformed Basic credentials") from None
    return user, password


def credentials(headers: dict[str, str], params: dict[str, str]) -> tuple[str, str]:
    if "x-clickhouse-user" in headers or "x-clickhouse-key" in headers:
        return headers.get("x-clickhouse-user", "default"), headers.get("x-clickhouse-key", "")
    basic = _basic(headers)
    if basic is not None:
        return basic
    return params.get("user", "default"), params.get("password", "")


def authenticate(users: dict[str, User], headers: dict[str, str], params: dict[str, str]) -> User:
    name, password = credentials(headers, params)
    user = users.get(name)
    # compare_digest for every attempt so timing does not reveal which user names exist
    ok = hmac.compare_digest(password.encode(), (user.password if user else "\0invalid").encode())
    if user is None or not ok:
        raise ClickHouseError(errors.AUTHENTICATION_FAILED,
                              f"{name}: Authentication failed: password is incorrect, or there is no user with such name.")
    return user


def access_management(statement: str) -> ClickHouseError:
    """The one-line refusal of CREATE USER, GRANT, SET ROLE r, ... (sqltext.access_statement).

    chDB runs every query as its single built-in user, which has no access-management rights
    (the engine answers ACCESS_DENIED, as if the admin lacked a grant); the users of this
    server are the configured ones, so say that and what to use instead."""
    return ClickHouseError(
        errors.NOT_IMPLEMENTED,
        f"{statement} is not supported by this chDB-backed server: its users are fixed at startup "
        "(CLICKHOUSE_USER read-write, CLICKHOUSE_BI_USER read-only, readonly=2) and it has no roles, grants, "
        "row policies, quotas or settings profiles; connect as one of those users instead")
