"""Output-format facts the HTTP layer needs: Content-Type and whether chunks can be streamed.

chDB's streaming API (send_query) formats every chunk on its own. That is byte-identical to a
whole result only for formats without a header/footer (measured: Native, RowBinary, CSV, TSV,
JSONEachRow, JSONCompactEachRow, TSKV); formats with a prefix or suffix (JSON, Arrow file,
ArrowStream, Parquet, *WithNames*) are produced in one piece instead.
"""
from __future__ import annotations

STREAMABLE = {
    "native", "rowbinary", "csv", "tabseparated", "tsv", "tabseparatedraw", "tsvraw", "raw",
    "jsoneachrow", "jsonlines", "ndjson", "jsoncompacteachrow", "jsonstringseachrow", "tskv",
}

_TEXT = "text/plain; charset=UTF-8"


def content_type(fmt: str) -> str:
    f = fmt.lower()
    if f.startswith(("tabseparated", "tsv")) or f == "raw":
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8; header=" + ("present" if "withnames" in f else "absent")
    if f in {"jsoneachrow", "jsonlines", "ndjson"}:
        return "application/x-ndjson; charset=UTF-8"
    if f.startswith("json"):
        return "application/json; charset=UTF-8"
    if f == "xml":
        return "application/xml; charset=UTF-8"
    if f.startswith(("pretty", "vertical", "markdown", "values", "tskv", "template")):
        return _TEXT
    return "application/octet-stream"  # Native, RowBinary*, Parquet, Arrow*, ORC, Avro, ...


def streamable(fmt: str) -> bool:
    return fmt.lower() in STREAMABLE
