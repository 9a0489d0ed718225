"""Native output for a client protocol revision (the HTTP `client_protocol_version` parameter).

clickhouse-server's HTTP handler passes `client_protocol_version` to the Native output format,
and NativeWriter changes the layout by revision:
  * revision > 0: every block starts with a BlockInfo (field 1 is_overflows, field 2 bucket_num,
    and from 54480 field 3 out_of_order_buckets), terminated by field number 0;
  * revision >= 54454 (DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION): a UInt8
    has_custom_serialization follows every column's type name;
  * revision < 54337: a top-level DateTime('tz') is sent as plain DateTime;
  * revision < 54405 (and > 0): LowCardinality is removed (not supported here: error);
  * AggregateFunction state versions, Dynamic/JSON V1/V2 (54473), sparse (54465), replicated
    (54482) and size-stream String (54492) serializations (not supported here: error, or, for the
    custom serializations, simply never used: has_custom_serialization is always 0, which every
    revision allows).
chDB has no way to set the client revision: its embedded client formats every result itself,
with revision 0 (no BlockInfo, no has_custom_serialization byte, top-level DateTime time zones
dropped). Revision 0 is what clickhouse-connect reads, so that path is untouched; for a request
with client_protocol_version > 0 the server re-frames chDB's Native bytes here. The column data
bytes are the same for every revision for the types supported here, so they are copied; only the
block and column headers are rewritten. To know where one column's data ends this module walks
it by type. chDB is asked for binary-encoded types (output_format_native_encode_types_in_binary_format)
so that the exact types, time zones included, are known; their names are rendered the way
ClickHouse's IDataType::getName() renders them.

Native *input* (INSERT ... FORMAT Native) is always read with revision 0 by clickhouse-server's
NativeInputFormat, whatever client_protocol_version says, and clickhouse-go encodes HTTP inserts
with revision 0 accordingly; chDB reads the same, so request bodies need no transcoding.
"""
from __future__ import annotations

import struct

from . import errors
from .errors import ClickHouseError

MIN_REVISION_WITH_TIME_ZONE_PARAMETER_IN_DATETIME_DATA_TYPE = 54337
MIN_REVISION_WITH_LOW_CARDINALITY_TYPE = 54405
MIN_REVISION_WITH_CUSTOM_SERIALIZATION = 54454
MIN_REVISION_WITH_OUT_OF_ORDER_BUCKETS_IN_AGGREGATION = 54480
# Revisions above this are answered as this one, as a server of that protocol version would
# (54492 sends String columns with a separate size stream, which is not implemented here).
MAX_REVISION = 54491

BINARY_TYPES_SETTING = "output_format_native_encode_types_in_binary_format"

_U64 = struct.Struct("<Q")
_MAX_DEPTH = 64


def requested_revision(value: str | None) -> int:
    """The client_protocol_version parameter as ClickHouse parses it (UInt64; absent = 0)."""
    if value is None or value == "":
        return 0
    text = value.strip()
    if not text.isdigit() or int(text) >= 1 << 64:
        raise ClickHouseError(errors.CANNOT_PARSE_TEXT, f"Cannot parse string '{value}' as UInt64")
    return int(text)


class _Incomplete(Exception):
    """The buffer ends inside a block: wait for more bytes."""


def _not_supported(what: str, revision: int) -> ClickHouseError:
    return ClickHouseError(
        errors.NOT_IMPLEMENTED,
        f"{what} cannot be sent in Native format for client_protocol_version={revision} by this chDB-backed "
        "server (it re-frames chDB's revision-0 Native output and supports plain data types only); "
        "cast the column to a plainer type, or use client_protocol_version=0 or another format such as RowBinary",
    )


def _corrupt(detail: str) -> ClickHouseError:
    return ClickHouseError(errors.LOGICAL_ERROR, f"Cannot re-frame chDB's Native output: {detail}")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise _corrupt("VarUInt is longer than 10 bytes")


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(buf: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = _varint(buf, pos)
    end = pos + size
    if end > len(buf):
        raise _Incomplete
    return bytes(buf[pos:end]), end


def _u64(buf: bytes, pos: int) -> int:
    if pos + 8 > len(buf):
        raise _Incomplete
    return _U64.unpack_from(buf, pos)[0]


def _quote(value: bytes, quote: int) -> bytes:
    """ClickHouse's writeAnyQuotedString: backslash escapes for the quote, backslash and controls."""
    out = bytearray([quote])
    for c in value:
        esc = _ESCAPES.get(c)
        if esc is not None:
            out += esc
        elif c == quote:
            out += b"\\" + bytes([c])
        else:
            out.append(c)
    out.append(quote)
    return bytes(out)


_ESCAPES = {0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t", 0x00: b"\\0", 0x5C: b"\\\\"}


def _quote_string(value: bytes) -> bytes:
    return _quote(value, 0x27)


def _back_quote_if_need(name: bytes) -> bytes:
    """backQuoteIfNeed(): plain identifiers stay bare (NULL is not an identifier)."""
    if name and (chr(name[0]).isascii() and (chr(name[0]).isalpha() or name[0] == 0x5F)) \
            and all(chr(c).isascii() and (chr(c).isalnum() or c == 0x5F) for c in name) \
            and name.lower() != b"null":
        return name
    return _quote(name, 0x60)


# ---- types: each knows its name and how to walk its data ----------------------------------

class _Type:
    name: bytes = b""
    has_prefix = False

    def prefix(self, buf: bytes, pos: int) -> int:
        return pos

    def data(self, buf: bytes, pos: int, n: int) -> int:
        raise NotImplementedError


class _Fixed(_Type):
    def __init__(self, name: bytes, width: int):
        self.name, self.width = name, width

    def data(self, buf, pos, n):
        return pos + n * self.width


class _String(_Type):
    name = b"String"

    def data(self, buf, pos, n):
        for _ in range(n):
            size = buf[pos]
            if size < 0x80:
                pos += 1 + size
            else:
                size, pos = _varint(buf, pos)
                pos += size
        return pos


class _Nullable(_Type):
    def __init__(self, nested: _Type):
        self.nested = nested
        self.name = b"Nullable(" + nested.name + b")"
        self.has_prefix = nested.has_prefix

    def prefix(self, buf, pos):
        return self.nested.prefix(buf, pos)

    def data(self, buf, pos, n):
        return self.nested.data(buf, pos + n, n)


class _Array(_Type):
    """Array(T) is offsets (UInt64 per row), then the elements; Map(K, V) is Array(Tuple(K, V))."""

    def __init__(self, name: bytes, elements: list[_Type]):
        self.name, self.elements = name, elements
        self.has_prefix = any(e.has_prefix for e in elements)

    def prefix(self, buf, pos):
        for e in self.elements:
            pos = e.prefix(buf, pos)
        return pos

    def data(self, buf, pos, n):
        if n == 0:
            return pos
        total = _u64(buf, pos + 8 * (n - 1))
        pos += 8 * n
        for e in self.elements:
            pos = e.data(buf, pos, total)
        return pos


class _Tuple(_Type):
    def __init__(self, name: bytes, elements: list[_Type]):
        self.name, self.elements = name, elements
        self.has_prefix = any(e.has_prefix for e in elements)

    def prefix(self, buf, pos):
        for e in self.elements:
            pos = e.prefix(buf, pos)
        return pos

    def data(self, buf, pos, n):
        for e in self.elements:
            pos = e.data(buf, pos, n)
        return pos


class _LowCardinality(_Type):
    """SerializationLowCardinality: a UInt64 keys version in the prefix; per column one or more
    groups of UInt64 flags, [global dictionary], [additional keys], UInt64 row count, indexes."""

    has_prefix = True
    _INDEX_WIDTH = (1, 2, 4, 8)

    def __init__(self, dictionary: _Type):
        self.name = b"LowCardinality(" + dictionary.name + b")"
        self.keys = dictionary.nested if isinstance(dictionary, _Nullable) else dictionary

    def prefix(self, buf, pos):
        version = _u64(buf, pos)
        if version != 1:
            raise _corrupt(f"unknown LowCardinality keys serialization version {version}")
        return pos + 8

    def data(self, buf, pos, n):
        while n > 0:
            flags = _u64(buf, pos)
            pos += 8
            index_type = flags & 0xFF
            if index_type > 3 or flags >> 11:
                raise _corrupt(f"unknown LowCardinality index flags {flags:#x}")
            if flags & (1 << 8) and flags & (1 << 10):  # global dictionary, updated
                keys = _u64(buf, pos)
                pos = self.keys.data(buf, pos + 8, keys)
            if flags & (1 << 9):  # additional keys
                keys = _u64(buf, pos)
                pos = self.keys.data(buf, pos + 8, keys)
            rows = _u64(buf, pos)
            if rows > n:
                raise _corrupt("LowCardinality column has more rows than its block")
            pos += 8 + rows * self._INDEX_WIDTH[index_type]
            n -= rows
        return pos


_SIMPLE = {
    0x01: (b"UInt8", 1), 0x02: (b"UInt16", 2), 0x03: (b"UInt32", 4), 0x04: (b"UInt64", 8),
    0x05: (b"UInt128", 16), 0x06: (b"UInt256", 32), 0x07: (b"Int8", 1), 0x08: (b"Int16", 2),
    0x09: (b"Int32", 4), 0x0A: (b"Int64", 8), 0x0B: (b"Int128", 16), 0x0C: (b"Int256", 32),
    0x0D: (b"Float32", 4), 0x0E: (b"Float64", 8), 0x0F: (b"Date", 2), 0x10: (b"Date32", 4),
    0x11: (b"DateTime", 4), 0x1D: (b"UUID", 16), 0x28: (b"IPv4", 4), 0x29: (b"IPv6", 16),
    0x2D: (b"Bool", 1), 0x31: (b"BFloat16", 2), 0x32: (b"Time", 4),
    0x00: (b"Nothing", 1),  # SerializationNothing writes one byte per row
}
_DECIMAL_WIDTH = {0x19: 4, 0x1A: 8, 0x1B: 16, 0x1C: 32}
_INTERVALS = (b"Nanosecond", b"Microsecond", b"Millisecond", b"Second", b"Minute", b"Hour", b"Day", b"Week",
              b"Month", b"Quarter", b"Year")
# Custom (geo) types: name -> how many Arrays wrap a Point (Tuple(Float64, Float64))
_GEO = {b"Point": 0, b"Ring": 1, b"LineString": 1, b"Polygon": 2, b"MultiLineString": 2, b"MultiPolygon": 3}
_UNSUPPORTED = {0x21: "Set", 0x24: "Function", 0x25: "AggregateFunction", 0x2A: "Variant", 0x2B: "Dynamic",
                0x2F: "Nested", 0x30: "JSON"}
_QBIT, _QBIT_WITH_STRIDE = 0x36, 0x37


def _geo(name: bytes) -> _Type:
    t: _Type = _Tuple(b"Tuple(Float64, Float64)", [_Fixed(b"Float64", 8), _Fixed(b"Float64", 8)])
    for _ in range(_GEO[name]):
        t = _Array(b"Array(" + t.name + b")", [t])
    t.name = name
    return t


def _decode_type(buf: bytes, pos: int, revision: int, depth: int = 0) -> tuple[_Type, int]:
    """One type from ClickHouse's binary type encoding (DataTypesBinaryEncoding)."""
    if depth > _MAX_DEPTH:
        raise _corrupt("type is nested too deeply")
    code = buf[pos]
    pos += 1
    if code in _SIMPLE:
        name, width = _SIMPLE[code]
        return _Fixed(name, width), pos
    if code == 0x15:
        return _String(), pos
    if code == 0x12:  # DateTime('tz')
        tz, pos = _string(buf, pos)
        return _Fixed(b"DateTime(" + _quote_string(tz) + b")", 4), pos
    if code in (0x13, 0x14):  # DateTime64(P[, 'tz'])
        scale = buf[pos]
        pos += 1
        name = b"DateTime64(%d" % scale
        if code == 0x14:
            tz, pos = _string(buf, pos)
            name += b", " + _quote_string(tz)
        return _Fixed(name + b")", 8), pos
    if code == 0x34:  # Time64(P)
        scale = buf[pos]
        return _Fixed(b"Time64(%d)" % scale, 8), pos + 1
    if code == 0x16:
        size, pos = _varint(buf, pos)
        return _Fixed(b"FixedString(%d)" % size, size), pos
    if code in (0x17, 0x18):  # Enum8 / Enum16: count, then (name, value) pairs
        width = 1 if code == 0x17 else 2
        count, pos = _varint(buf, pos)
        items = []
        for _ in range(count):
            label, pos = _string(buf, pos)
            if pos + width > len(buf):
                raise _Incomplete
            value = int.from_bytes(buf[pos:pos + width], "little", signed=True)
            pos += width
            items.append(_quote_string(label) + b" = %d" % value)
        return _Fixed(b"Enum%d(" % (8 * width) + b", ".join(items) + b")", width), pos
    if code in _DECIMAL_WIDTH:
        precision, scale = buf[pos], buf[pos + 1]
        return _Fixed(b"Decimal(%d, %d)" % (precision, scale), _DECIMAL_WIDTH[code]), pos + 2
    if code == 0x22:  # Interval
        kind = buf[pos]
        if kind >= len(_INTERVALS):
            raise _corrupt(f"unknown interval kind {kind}")
        return _Fixed(b"Interval" + _INTERVALS[kind], 8), pos + 1
    if code == 0x1E:
        nested, pos = _decode_type(buf, pos, revision, depth + 1)
        return _Array(b"Array(" + nested.name + b")", [nested]), pos
    if code == 0x23:
        nested, pos = _decode_type(buf, pos, revision, depth + 1)
        return _Nullable(nested), pos
    if code == 0x26:
        if 0 < revision < MIN_REVISION_WITH_LOW_CARDINALITY_TYPE:
            raise _not_supported("LowCardinality (which revisions below 54405 receive as its base type)", revision)
        nested, pos = _decode_type(buf, pos, revision, depth + 1)
        return _LowCardinality(nested), pos
    if code == 0x27:
        key, pos = _decode_type(buf, pos, revision, depth + 1)
        value, pos = _decode_type(buf, pos, revision, depth + 1)
        return _Array(b"Map(" + key.name + b", " + value.name + b")", [key, value]), pos
    if code in (0x1F, 0x20):  # Tuple(T, ...) / Tuple(name T, ...)
        count, pos = _varint(buf, pos)
        elements, parts = [], []
        for _ in range(count):
            label = None
            if code == 0x20:
                label, pos = _string(buf, pos)
            element, pos = _decode_type(buf, pos, revision, depth + 1)
            elements.append(element)
            parts.append(element.name if label is None else _back_quote_if_need(label) + b" " + element.name)
        return _Tuple(b"Tuple(" + b", ".join(parts) + b")", elements), pos
    if code == 0x2E:  # SimpleAggregateFunction(f, T): stored as T
        function, pos = _string(buf, pos)
        params, pos = _varint(buf, pos)
        if params:
            raise _not_supported(f"SimpleAggregateFunction({function.decode(errors='replace')}) with parameters",
                                 revision)
        count, pos = _varint(buf, pos)
        if count != 1:
            raise _not_supported("SimpleAggregateFunction with several arguments", revision)
        nested, pos = _decode_type(buf, pos, revision, depth + 1)
        # the storage type carries the name; its data layout is the argument's
        wrapper = _Tuple(b"SimpleAggregateFunction(" + function + b", " + nested.name + b")", [nested])
        return wrapper, pos
    if code in (_QBIT, _QBIT_WITH_STRIDE):  # QBit(T, dimension[, stride])
        # Native sends QBit as a Tuple of one FixedString(ceil(dimension / 8)) per bit of T (with a
        # stride: dimension / stride groups of stride / 8 bytes, the same width); the walk only
        # needs the row width.
        element, pos = _decode_type(buf, pos, revision, depth + 1)
        if not isinstance(element, _Fixed):
            raise _corrupt(f"QBit of {element.name.decode(errors='replace')}")
        dimension, pos = _varint(buf, pos)
        name = b"QBit(%s, %d" % (element.name, dimension)
        if code == _QBIT_WITH_STRIDE:
            stride, pos = _varint(buf, pos)
            name += b", %d" % stride
        return _Fixed(name + b")", 8 * element.width * -(-dimension // 8)), pos
    if code == 0x2C:  # custom type by name
        name, pos = _string(buf, pos)
        if name in _GEO:
            return _geo(name), pos
        raise _not_supported(f"type {name.decode(errors='replace')}", revision)
    if code in _UNSUPPORTED:
        raise _not_supported(f"type {_UNSUPPORTED[code]}", revision)
    raise _corrupt(f"unknown binary type code {code:#x}")


class Transcoder:
    """Re-frames chDB's Native output (revision 0, binary-encoded types) for a client revision.

    `feed()` takes the bytes in order and returns the transcoded whole blocks seen so far (a
    block cut at the end of a piece waits for the next pieces); `finish()` returns the rest and
    raises if the bytes end inside a block.
    `binary_types` keeps the binary type encoding in the output (the client asked for it with
    output_format_native_encode_types_in_binary_format=1); otherwise type names are written.
    """

    def __init__(self, revision: int, binary_types: bool = False):
        if revision <= 0:
            raise ValueError("revision 0 needs no transcoding")
        self.revision = min(revision, MAX_REVISION)
        self.requested = revision
        self.binary_types = binary_types
        info = b"\x01\x00\x02\xff\xff\xff\xff"  # is_overflows = false, bucket_num = -1
        if self.revision >= MIN_REVISION_WITH_OUT_OF_ORDER_BUCKETS_IN_AGGREGATION:
            info += b"\x03\x00"  # out_of_order_buckets = []
        self._block_info = info + b"\x00"
        self._custom = b"\x00" if self.revision >= MIN_REVISION_WITH_CUSTOM_SERIALIZATION else b""
        self._types: dict[bytes, tuple[_Type, bytes]] = {}
        self._tail: list[bytes] = []  # the start of a block cut at the end of a piece
        self._tail_size = 0
        self._retry_at = 0

    def feed(self, data) -> bytes:
        if self._tail:
            self._tail.append(bytes(data))
            self._tail_size += len(data)
            if self._tail_size < self._retry_at:  # a cut block is re-parsed only after it doubles
                return b""
            buf = b"".join(self._tail)
        else:
            buf = bytes(data)
        out: list = []
        pos = 0
        view = memoryview(buf)
        while pos < len(buf):
            try:
                pos = self._block(buf, view, pos, out)
            except (_Incomplete, IndexError, struct.error):
                break
        self._tail = [buf[pos:]] if pos < len(buf) else []
        self._tail_size = len(buf) - pos
        self._retry_at = 2 * self._tail_size
        return b"".join(out)

    def finish(self) -> bytes:
        """The rest of the output; an error if it ends inside a block."""
        rest = b""
        if self._tail:
            self._retry_at = 0
            rest = self.feed(b"")
        if self._tail:
            size = self._tail_size
            self._tail, self._tail_size = [], 0
            raise _corrupt(f"the output ends inside a block ({size} bytes left over)")
        return rest

    def _type(self, buf: bytes, pos: int) -> tuple[_Type, bytes, int]:
        start = pos
        # cache by the encoded bytes (blocks repeat their columns' types)
        t, end = _decode_type(buf, pos, self.requested)
        raw = buf[start:end]
        cached = self._types.get(raw)
        if cached is None:
            name = t.name
            if self.revision < MIN_REVISION_WITH_TIME_ZONE_PARAMETER_IN_DATETIME_DATA_TYPE and name.startswith(b"DateTime("):
                name = b"DateTime"
            cached = self._types[raw] = (t, raw if self.binary_types else _put_varint(len(name)) + name)
        return cached[0], cached[1], end

    def _block(self, buf: bytes, view: memoryview, pos: int, out: list) -> int:
        pieces = [self._block_info]
        columns, p = _varint(buf, pos)
        rows, p = _varint(buf, p)
        pieces.append(view[pos:p])
        for _ in range(columns):
            name_start = p
            _, p = _string(buf, p)
            pieces.append(view[name_start:p])
            t, encoded, p = self._type(buf, p)
            pieces.append(encoded)
            if self._custom:
                pieces.append(self._custom)
            if rows:
                data_start = p
                if t.has_prefix:
                    p = t.prefix(buf, p)
                p = t.data(buf, p, rows)
                if p > len(buf):
                    raise _Incomplete
                pieces.append(view[data_start:p])
        out.extend(pieces)
        return p
