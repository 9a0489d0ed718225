"""Turning one cell of a user's file into a contract value, or an `Invalid` with the reason.

A cell is what the reader gives: a string (CSV, kept verbatim) or a typed value (Parquet: int,
float, Decimal, datetime, date, bool). Each parser takes the column's options (format, timezone,
decimal separator ...) from mapping.Column and raises Invalid with a reason that names the problem,
not the row: the caller adds the row and the field.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

# what the Flink job accepts as epoch milliseconds: 10-15 digits (flink_jobs/udf Records.MILLIS_RE)
MIN_MS, MAX_MS = 1_000_000_000, 999_999_999_999_999
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# ids that are not UUIDs become name-based UUIDs (v5) under this namespace: the same source id always
# gives the same UUID, so importing a file twice sends the same ids and the pipeline deduplicates them
ID_NAMESPACE = uuid.UUID("5b0f7c52-1c1e-4c55-9a43-3f6f1f0b8e21")


class Invalid(ValueError):
    """A cell that cannot become a contract value; the message is the reason."""


def text(value) -> str | None:
    """A string, stripped; empty and missing cells are None."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:   # NaN: pandas-written Parquet's missing value
        return None
    s = str(value).strip()
    return s or None


def decimal(value, decimal_sep: str = ".", thousands_sep: str | None = None) -> Decimal:
    """A number written with the file's separators ("1.234,50" with decimal "," and thousands ".")."""
    if isinstance(value, bool):
        raise Invalid(f"expected a number, got {value!r}")
    if isinstance(value, (int, Decimal)):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))   # the shortest text of the float: 19.99, not 19.989999...
    else:
        s = str(value).strip().replace(" ", "").replace("\u00a0", "")
        if thousands_sep:
            s = s.replace(thousands_sep, "")
        if decimal_sep != ".":
            if "." in s:
                raise Invalid(f"{value!r} has a '.' but the decimal separator is {decimal_sep!r}")
            s = s.replace(decimal_sep, ".")
        try:
            d = Decimal(s)
        except InvalidOperation:
            raise Invalid(f"{value!r} is not a number") from None
    if not d.is_finite():
        raise Invalid(f"{value!r} is not a finite number")
    return d


def cents(value, decimal_sep: str = ".", thousands_sep: str | None = None) -> int:
    """A non-negative amount in integer cents, rounded half-up (as the job's DECIMAL(12, 2) cast)."""
    d = decimal(value, decimal_sep, thousands_sep)
    if d < 0:
        raise Invalid(f"{value!r} is negative")
    c = int((d * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if c >= 10**12:
        raise Invalid(f"{value!r} does not fit DECIMAL(12, 2)")
    return c


def integer(value, decimal_sep: str = ".") -> int:
    d = decimal(value, decimal_sep)
    if d != d.to_integral_value():
        raise Invalid(f"{value!r} is not a whole number")
    return int(d)


def _aware(t: dt.datetime, tz: str) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=ZoneInfo(tz))


def epoch_ms(value, fmt: str = "iso", tz: str = "UTC", decimal_sep: str = ".") -> int:
    """An instant as UTC epoch milliseconds.

    fmt: "iso" (ISO 8601; a date alone is its midnight), "epoch_s", "epoch_ms", or a strptime
    pattern ("%d.%m.%Y %H:%M"). Times without an offset are in `tz` (an IANA zone name).
    Parquet timestamps (datetime values) are taken as they are, naive ones in `tz`.
    """
    if isinstance(value, dt.datetime):
        t = _aware(value, tz)
    elif isinstance(value, dt.date):
        t = dt.datetime.combine(value, dt.time(), ZoneInfo(tz))
    elif fmt in ("epoch_s", "epoch_ms"):
        d = decimal(value, decimal_sep)
        ms = int(d * 1000) if fmt == "epoch_s" else int(d)
        if fmt == "epoch_s" and ms > MAX_MS:
            raise Invalid(f"{value!r} is too large for epoch seconds (milliseconds? use format: epoch_ms)")
        if fmt == "epoch_ms" and abs(ms) < 10**11:
            # before March 1973: seconds read as milliseconds, not web history (stricter than the job)
            raise Invalid(f"{value!r} is in 1970 as epoch milliseconds (seconds? use format: epoch_s)")
        return _in_range(ms, value)
    else:
        s = str(value).strip()
        try:
            t = dt.datetime.fromisoformat(s) if fmt == "iso" else dt.datetime.strptime(s, fmt)
        except ValueError:
            expected = "an ISO 8601 time" if fmt == "iso" else f"a time in format {fmt!r}"
            raise Invalid(f"{value!r} is not {expected}") from None
        t = _aware(t, tz)
    return _in_range(int(t.timestamp() * 1000), value)


def _in_range(ms: int, value) -> int:
    if not MIN_MS <= ms <= MAX_MS:
        raise Invalid(f"{value!r} is outside 1970-01-12 .. year 33658 (seconds given as milliseconds?)")
    return ms


def date(value, fmt: str = "iso", tz: str = "UTC") -> dt.date:
    """A calendar date; a time of day is converted to `tz` first (a signup at 23:30 UTC is the next day in Berlin)."""
    if isinstance(value, dt.datetime):
        return _aware(value, tz).astimezone(ZoneInfo(tz)).date()
    if isinstance(value, dt.date):
        return value
    if fmt in ("epoch_s", "epoch_ms"):
        ms = epoch_ms(value, fmt, tz)
        return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).date()
    s = str(value).strip()
    try:
        t = dt.datetime.fromisoformat(s) if fmt == "iso" else dt.datetime.strptime(s, fmt)
    except ValueError:
        expected = "an ISO 8601 date" if fmt == "iso" else f"a date in format {fmt!r}"
        raise Invalid(f"{value!r} is not {expected}") from None
    return _aware(t, tz).astimezone(ZoneInfo(tz)).date() if t.tzinfo else t.date()


def record_id(value, kind: str) -> str:
    """The contract's UUID: a UUID as it is (lower case), anything else as its name-based UUID."""
    s = text(value)
    if s is None:
        raise Invalid("empty")
    if UUID_RE.match(s):
        return s.lower()
    return str(uuid.uuid5(ID_NAMESPACE, f"{kind}:{s}"))
