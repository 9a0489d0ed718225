"""The user's mapping file (YAML): which file holds what, and how its columns become the contracts' fields.

    timezone: Europe/Berlin        # times without an offset are in this zone (default UTC)
    decimal: ","                   # decimal separator of numbers in CSV files (default ".")
    customers:
      file: crm_export.csv         # relative to the mapping file; .csv or .parquet
      csv: {delimiter: ";"}        # options of Python's csv reader, plus encoding
      columns:
        customer_id: KundenNr                              # a column name ...
        signup_date: {column: Registriert, format: "%d.%m.%Y"}
        subscription_tier: {column: Tarif, map: {Gold: premium, Basis: free}}
        acquisition_channel: {value: direct}               # ... or a constant

The sections are customers, orders, order_items and web_events; each is optional. The fields of each
section, which are required and what they mean: FIELDS below and simulators/importing/README.md.
Anything unknown (a section, a field, an option) is an error: a typo must not silently import nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from platform_common.errors import StackError

# section -> {contract field: kind}. Kinds: see records.py. `?` marks an optional field.
FIELDS: dict[str, dict[str, str]] = {
    "customers": {"customer_id": "text", "email": "text", "signup_date": "date", "country": "country",
                  "acquisition_channel": "text", "subscription_tier": "text", "updated_at": "time?"},
    "web_events": {"event_id": "id?", "customer_id": "text", "session_id": "text", "event_type": "event_type",
                   "page_url": "text?", "product_id": "text?", "search_query": "text?", "device_type": "text",
                   "country": "country", "utm_source": "text?", "event_time": "time"},
    # product_id/quantity/unit_price here: each row is one line item of its order (rows grouped by order_id)
    "orders": {"order_id": "id", "customer_id": "text", "session_id": "text?", "order_time": "time",
               "total_amount": "money?", "currency": "currency", "payment_method": "text",
               "order_status": "order_status", "shipping_country": "country",
               "product_id": "text?", "quantity": "int?", "unit_price": "money?"},
    "order_items": {"order_id": "id", "product_id": "text", "quantity": "int?", "unit_price": "money"},
}
COLUMN_OPTIONS = {"column", "value", "format", "timezone", "decimal", "thousands", "map"}
SECTION_OPTIONS = {"file", "columns", "csv", "timezone", "decimal", "thousands"}
TOP_OPTIONS = {"timezone", "decimal", "thousands", *FIELDS}
CSV_OPTIONS = {"delimiter", "quotechar", "encoding"}


class MappingError(StackError):
    """The mapping file or a data file cannot be used at all; the message says where and why."""


@dataclass(frozen=True)
class Column:
    field: str                      # the contract field
    kind: str                       # text, date, time, money, ... (records.py parses by kind)
    required: bool
    column: str | None = None       # the source column, or None for a constant
    value: object = None            # the constant (when column is None)
    format: str = "iso"             # times and dates: iso, epoch_s, epoch_ms or a strptime pattern
    timezone: str = "UTC"
    decimal: str = "."
    thousands: str | None = None
    map: dict = field(default_factory=dict)   # source value -> contract value, applied first


@dataclass(frozen=True)
class Section:
    name: str
    file: Path
    columns: dict[str, Column]
    csv: dict

    def has(self, name: str) -> bool:
        return name in self.columns


@dataclass(frozen=True)
class Mapping:
    path: Path
    sections: dict[str, Section]

    def get(self, name: str) -> Section | None:
        return self.sections.get(name)


def _fail(path: Path, where: str, what: str) -> MappingError:
    return MappingError(f"mapping {path}: {where}: {what}")


def _unknown(path: Path, where: str, got: dict, allowed: set) -> None:
    extra = sorted(set(got) - allowed)
    if extra:
        raise _fail(path, where, f"unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _timezone(path: Path, where: str, tz) -> str:
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(path, where, f"unknown time zone {tz!r} (an IANA name such as UTC or Europe/Berlin)") from None
    return str(tz)


def _separator(path: Path, where: str, value, allow_none: bool) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or len(value) != 1 or value.isdigit():
        raise _fail(path, where, f"expected one non-digit character, got {value!r}")
    return value


def _column(path: Path, where: str, name: str, spec, kind: str, defaults: dict) -> Column:
    if isinstance(spec, str):
        spec = {"column": spec}
    if not isinstance(spec, dict):
        raise _fail(path, where, "expected a column name or a mapping with column/value/format/...")
    _unknown(path, where, spec, COLUMN_OPTIONS)
    if ("column" in spec) == ("value" in spec):
        raise _fail(path, where, "give exactly one of column (a source column) or value (a constant)")
    fmt = str(spec.get("format", "iso"))
    if fmt not in ("iso", "epoch_s", "epoch_ms") and "%" not in fmt:
        raise _fail(path, where, f"format {fmt!r} is none of iso, epoch_s, epoch_ms or a strptime pattern")
    mapping = spec.get("map", {})
    if not isinstance(mapping, dict):
        raise _fail(path, where, "map must be a mapping of source value -> contract value")
    opts = {**defaults, **{k: spec[k] for k in ("timezone", "decimal", "thousands") if k in spec}}
    return Column(field=name, kind=kind.rstrip("?"), required=not kind.endswith("?"),
                  column=str(spec["column"]) if "column" in spec else None, value=spec.get("value"), format=fmt,
                  timezone=_timezone(path, where, opts["timezone"]),
                  decimal=_separator(path, f"{where}.decimal", opts["decimal"], False),
                  thousands=_separator(path, f"{where}.thousands", opts["thousands"], True),
                  map={str(k): v for k, v in mapping.items()})


def _section(path: Path, name: str, spec, top: dict) -> Section:
    if not isinstance(spec, dict):
        raise _fail(path, name, "expected a mapping with file and columns")
    _unknown(path, name, spec, SECTION_OPTIONS)
    if "file" not in spec or "columns" not in spec or not isinstance(spec["columns"], dict):
        raise _fail(path, name, "needs file (a .csv or .parquet path) and columns (field: source column)")
    file = (path.parent / str(spec["file"])).resolve()
    if file.suffix.lower() not in (".csv", ".parquet"):
        raise _fail(path, f"{name}.file", f"{file.name}: expected a .csv or .parquet file")
    csv_opts = spec.get("csv", {})
    if not isinstance(csv_opts, dict):
        raise _fail(path, f"{name}.csv", "expected a mapping (delimiter, quotechar, encoding)")
    _unknown(path, f"{name}.csv", csv_opts, CSV_OPTIONS)
    defaults = {"timezone": spec.get("timezone", top["timezone"]), "decimal": spec.get("decimal", top["decimal"]),
                "thousands": spec.get("thousands", top["thousands"])}
    kinds = FIELDS[name]
    _unknown(path, f"{name}.columns", spec["columns"], set(kinds))
    columns = {f: _column(path, f"{name}.columns.{f}", f, s, kinds[f], defaults) for f, s in spec["columns"].items()}
    missing = [f for f, k in kinds.items() if not k.endswith("?") and f not in columns]
    if missing:
        raise _fail(path, f"{name}.columns", f"required field {missing[0]!r} is not mapped "
                                             f"(map it to a column, or give a constant with value:)")
    return Section(name, file, columns, dict(csv_opts))


def load(path: str | Path) -> Mapping:
    path = Path(path).resolve()
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"mapping {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise MappingError(f"mapping {path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(spec, dict):
        raise MappingError(f"mapping {path}: expected sections customers, orders, order_items, web_events")
    _unknown(path, "top level", spec, TOP_OPTIONS)
    top = {"timezone": spec.get("timezone", "UTC"), "decimal": spec.get("decimal", "."),
           "thousands": spec.get("thousands")}
    sections = {name: _section(path, name, spec[name], top) for name in FIELDS if name in spec}
    if not sections:
        raise MappingError(f"mapping {path}: no section to import (customers, orders, order_items, web_events)")
    if "order_items" in sections:
        if "orders" not in sections:
            raise _fail(path, "order_items", "needs an orders section (items are joined to orders by order_id)")
        if any(f in sections["orders"].columns for f in ("product_id", "quantity", "unit_price")):
            raise _fail(path, "orders.columns", "line items come from order_items: do not also map "
                                                "product_id/quantity/unit_price in orders")
    orders = sections.get("orders")
    if orders and "quantity" in orders.columns and "unit_price" not in orders.columns:
        raise _fail(path, "orders.columns", "quantity is a line item's: map unit_price too (one row per line item)")
    if orders and "order_items" not in sections and "unit_price" not in orders.columns \
            and "total_amount" not in orders.columns:
        raise _fail(path, "orders.columns", "map total_amount (orders without line items) or unit_price "
                                            "(one row per line item), or add an order_items section")
    return Mapping(path, sections)
