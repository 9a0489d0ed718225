"""Users and credentials, accepted the three ways clickhouse-server accepts them.

X-ClickHouse-User/X-ClickHouse-Key headers, HTTP basic auth, or user/password URL parameters;
no credentials means user 'default' with an empty password. Failures are AUTHENTICATION_FAILED
(516), which clickhouse-server's HTTP handler answers with 403.
"""
from __future__ import annotations

import base64
import hmac

from . import errors
from .config import User
from .errors import ClickHouseError


def _basic(headers: dict[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    if not value[:6].lower() == "basic ":
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
