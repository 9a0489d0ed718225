"""One row of a user's file -> one contract record (simulators/README.md "Records", and the Flink job's
rules in flink_jobs/udf Records.java), or Invalid naming the field and the problem.

The checks are the job's (and PostgreSQL's for crm.customers), so a row that passes here is a valid
record there: what the importer sends, the ledger counts and wait-for-pipeline expects in raw.*.
"""
from __future__ import annotations

from simulators.importing import values
from simulators.importing.mapping import Column, Section
from simulators.importing.values import Invalid
from simulators.ledger import ORDER_STATUSES, WEB_TYPES

MAX_ITEMS = 20        # line items per order (flink_jobs/pipeline.py MAX_ITEMS)
MAX_QUANTITY = 999_999


def _cell(col: Column, row: dict):
    raw = col.value if col.column is None else row.get(col.column)
    if col.map and raw is not None and str(raw).strip() in col.map:
        return col.map[str(raw).strip()]
    return raw


def _parse(col: Column, raw):
    """A present cell as the field's contract value."""
    k = col.kind
    if k == "time":
        return values.epoch_ms(raw, col.format, col.timezone, col.decimal)
    if k == "date":
        return values.date(raw, col.format, col.timezone)
    if k == "money":
        return values.cents(raw, col.decimal, col.thousands)
    if k == "int":
        return values.integer(raw, col.decimal)
    if k == "id":
        return values.record_id(raw, col.field)
    s = values.text(raw)
    if k in ("country", "currency"):
        s = s.upper()
        if len(s) != (2 if k == "country" else 3) or not s.isascii() or not s.isalpha():
            raise Invalid(f"{raw!r} is not an ISO {'3166 alpha-2' if k == 'country' else '4217'} code")
    elif k == "event_type" and s not in WEB_TYPES:
        raise Invalid(f"{raw!r} is not one of {', '.join(WEB_TYPES)} (translate it with map:)")
    elif k == "order_status" and s not in ORDER_STATUSES:
        raise Invalid(f"{raw!r} is not one of {', '.join(ORDER_STATUSES)} (translate it with map:)")
    return s


def convert_one(section: Section, name: str, row: dict):
    """One field of the row (None when empty), e.g. the order_id of an otherwise invalid row."""
    col = section.columns[name]
    raw = _cell(col, row)
    return None if values.text(raw) is None else _parse(col, raw)


def convert(section: Section, row: dict) -> dict:
    """The row's mapped fields as contract values (None for an empty optional one)."""
    out = {}
    for name, col in section.columns.items():
        raw = _cell(col, row)
        if values.text(raw) is None:
            if col.required:
                raise Invalid(f"{name}: missing")
            out[name] = None
            continue
        try:
            out[name] = _parse(col, raw)
        except Invalid as exc:
            raise Invalid(f"{name}: {exc}") from None
    return out


def customer(section: Section, row: dict, default_updated_ms: int) -> dict:
    """A crm.customers row (updated_at in epoch ms; the import's start when the file has none)."""
    c = convert(section, row)
    c["updated_at"] = c.get("updated_at") or default_updated_ms
    return c


def web_event(section: Section, row: dict) -> dict:
    """A web_events record with every field of the contract, in its order; a missing event_id is
    derived from the event's content (so re-importing the same file sends the same ids)."""
    e = convert(section, row)
    rec = {f: e.get(f) for f in ("event_id", "customer_id", "session_id", "event_type", "page_url", "product_id",
                                  "search_query", "device_type", "country", "utm_source", "event_time")}
    if rec["event_id"] is None:
        rec["event_id"] = values.record_id("|".join(str(rec[f]) for f in list(rec)[1:]), "web_event")
    return rec


def order_row(section: Section, row: dict) -> tuple[dict, dict | None]:
    """An orders row: its order fields and, when the row is a line item, the item."""
    o = convert(section, row)
    item = None
    if o.get("unit_price") is not None:
        item = _item(o)
    return o, item


def item_row(section: Section, row: dict) -> tuple[str, dict]:
    """An order_items row: (order_id, item)."""
    i = convert(section, row)
    return i["order_id"], _item(i)


def _item(fields: dict) -> dict:
    if fields.get("product_id") is None:
        raise Invalid("product_id: missing (a line item needs one)")
    if fields.get("unit_price") is None:
        raise Invalid("unit_price: missing (a line item needs one)")
    q = fields.get("quantity") or 1
    if not 1 <= q <= MAX_QUANTITY:
        raise Invalid(f"quantity: {q} is not within 1..{MAX_QUANTITY}")
    return {"product_id": fields["product_id"], "quantity": q, "unit_price_cents": fields["unit_price"]}


ORDER_KEYS = ("order_id", "customer_id", "session_id", "order_time", "currency", "payment_method", "order_status",
              "shipping_country")


def order(fields: dict, items: list[dict]) -> tuple[dict, int, int]:
    """The purchase_events record of an order and its items: (record, total cents, item count).

    Without line items the order becomes one item (product_id "unknown", or the mapped one;
    quantity 1) priced at total_amount: the contract requires at least one. With items, total_amount
    is Σ quantity × unit_price; a mapped total_amount that differs is an invalid order.
    """
    if not items:
        if fields.get("total_amount") is None:
            raise Invalid("total_amount: missing (an order without line items needs it)")
        items = [{"product_id": fields.get("product_id") or "unknown", "quantity": 1,
                  "unit_price_cents": fields["total_amount"]}]
    if len(items) > MAX_ITEMS:
        raise Invalid(f"items: {len(items)} line items, more than the contract's {MAX_ITEMS}")
    total = sum(i["quantity"] * i["unit_price_cents"] for i in items)
    given = fields.get("total_amount")
    if given is not None and given != total:
        raise Invalid(f"total_amount: {given / 100:.2f} is not the sum of its line items ({total / 100:.2f})")
    if total >= 10**12:
        raise Invalid("total_amount: does not fit DECIMAL(12, 2)")
    rec = {k: fields.get(k) for k in ORDER_KEYS[:4]}
    rec["items"] = [{"product_id": i["product_id"], "quantity": i["quantity"],
                     "unit_price": _money(i["unit_price_cents"])} for i in items]
    rec["total_amount"] = _money(total)
    rec.update({k: fields.get(k) for k in ORDER_KEYS[4:]})
    return rec, total, sum(i["quantity"] for i in items)


def _money(c: int) -> int | float:
    # a JSON number with at most two decimals, as the simulators send it (30.99; 30 for whole amounts)
    return c // 100 if c % 100 == 0 else round(c / 100, 2)
