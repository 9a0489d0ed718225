"""multipart/form-data request bodies: the query and its `param_<name>` values as form fields.

clickhouse-connect sends a query as a form when its bind parameters are too long for the URL
(over 4 KiB encoded, e.g. an Array(String) of a few hundred UUIDs) or when the client was made
with `form_encode_query_params=True`: urllib3 (sync) and aiohttp (async) both encode the fields
as multipart/form-data, one text part per field (`query`, `param_ids`, ...).

clickhouse-server (HTTPHandler.cpp, DynamicQueryHandler::getQuery; HTMLForm.cpp) reads such a
body instead of treating it as SQL. Only a Content-Type of multipart/form-data does this: an
application/x-www-form-urlencoded body (what `curl -d 'SELECT 1'` sends) stays SQL text, in
clickhouse-server as here. A part with a `filename` is an external data table; this server does
not create those and says so (NOT_IMPLEMENTED) rather than misreading the request. How the
fields combine with the URL parameters is decided in app.py.

Parsing is python-multipart's streaming MultipartParser, fed as the body arrives, so the body
limit (raw and decoded bytes, see body.py) bounds the memory a form can take.
"""
from __future__ import annotations

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from . import errors
from .body import Body
from .errors import ClickHouseError

MEDIA_TYPE = "multipart/form-data"
# URL parameters that name an external table's format/structure/types; with a multipart body
# clickhouse-server does not take them as settings (so `date_time_input_format` is not one either).
EXTERNAL_SUFFIXES = ("_format", "_types", "_structure")


def is_multipart(content_type: str) -> bool:
    return content_type.strip().lower().startswith(MEDIA_TYPE)


def _bad(reason: str) -> ClickHouseError:
    return ClickHouseError(errors.BAD_ARGUMENTS, f"Cannot parse the multipart/form-data request body: {reason}")


def external_data_error(name: str, filename: str) -> ClickHouseError:
    return ClickHouseError(
        errors.NOT_IMPLEMENTED,
        f"External data is not supported by this chDB-backed server: the multipart/form-data request has a "
        f"file field '{name}' (filename '{filename}'), which clickhouse-server would load as a temporary table "
        f"for the query. Insert the rows into a table first, or pass them as a query parameter, "
        f"e.g. {{ids:Array(String)}} with a param_ids field")


class _Fields:
    """MultipartParser callbacks that collect the text fields, in order."""

    def __init__(self):
        self.fields: list[tuple[str, bytes]] = []
        self.ended = False
        self._headers: dict[str, str] = {}
        self._hname: list[bytes] = []
        self._hvalue: list[bytes] = []
        self._name = ""
        self._value: list[bytes] = []

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end, "on_end": self._end,
        }

    def _part_begin(self):
        self._headers, self._name, self._value = {}, "", []

    def _header_field(self, data, start, end):
        self._hname.append(data[start:end])

    def _header_value(self, data, start, end):
        self._hvalue.append(data[start:end])

    def _header_end(self):
        name = b"".join(self._hname).decode("latin-1").strip().lower()
        self._headers[name] = b"".join(self._hvalue).decode("utf-8", "replace").strip()
        self._hname, self._hvalue = [], []

    def _headers_finished(self):
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:  # clickhouse-server: a part with a filename is an external table
            raise external_data_error(self._name, options[b"filename"].decode("utf-8", "replace"))

    def _part_data(self, data, start, end):
        self._value.append(data[start:end])

    def _part_end(self):
        # values stay bytes: a `query` field may hold binary literals (app.py decodes param_ values)
        self.fields.append((self._name, b"".join(self._value)))
        self._value = []

    def _end(self):
        self.ended = True


async def read_fields(body: Body, content_type: str) -> list[tuple[str, bytes]]:
    """The text fields of a multipart/form-data body (name, raw value), in the order sent.

    Raises BAD_ARGUMENTS (400) for a malformed or truncated body, NOT_IMPLEMENTED (501) for a
    file field (external data) and QUERY_IS_TOO_LARGE (413) past the body limit."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise _bad("the Content-Type has no boundary")
    sink = _Fields()
    try:
        parser = MultipartParser(boundary, sink.callbacks())
        while raw := await body.next_raw():
            data = body.decode(raw)
            if data:
                parser.write(data)
    except FormParserError as exc:
        raise _bad(str(exc)) from None
    if not sink.ended:
        raise _bad("the body ended before the closing boundary")
    return sink.fields
