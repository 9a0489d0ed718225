"""Request bodies: size limit and Content-Encoding (what clickhouse-connect and curl send).

clickhouse-connect compresses INSERT bodies (lz4 by default, then zstd/gzip/deflate) and marks
them with Content-Encoding, so we decode incrementally as chunks arrive. Responses are never
compressed: clients only decompress when the response says Content-Encoding, and on loopback
compression costs more CPU than it saves.
"""
from __future__ import annotations

import zlib

from . import errors
from .errors import ClickHouseError


class _Identity:
    def decompress(self, data: bytes) -> bytes:
        return data


def _lz4():
    import lz4.frame
    return lz4.frame.LZ4FrameDecompressor()


def _zstd():
    try:
        from backports import zstd
    except ImportError:  # Python 3.14+
        from compression import zstd  # type: ignore[no-redef]
    return zstd.ZstdDecompressor()


def _br():
    import brotli  # optional; clients only send br when they have brotli too
    return brotli.Decompressor()


class _Frames:
    """Concatenated frames/members (clickhouse-connect compresses every block separately)."""

    def __init__(self, factory):
        self._factory = factory
        self._d = factory()

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            if self._d.eof:
                self._d = self._factory()
            out.append(self._d.decompress(data))
            data = self._d.unused_data if self._d.eof else b""
        return b"".join(out)


_DECODERS = {
    "": _Identity, "identity": _Identity, "none": _Identity,
    "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), "x-gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "deflate": lambda: zlib.decompressobj(), "lz4": _lz4, "zstd": _zstd, "br": _br,
}


class Body:
    """Pulls the body from ASGI `receive`, enforcing the limit on raw and decoded bytes."""

    def __init__(self, receive, encoding: str, limit: int, content_length: int | None):
        encoding = encoding.strip().lower()
        factory = _DECODERS.get(encoding)
        if factory is None:
            raise ClickHouseError(errors.UNKNOWN_COMPRESSION_METHOD, f"Unknown HTTP compression method: '{encoding}'")
        try:
            self._decoder = factory() if factory is _Identity else _Frames(factory)
        except ImportError:
            raise ClickHouseError(errors.UNKNOWN_COMPRESSION_METHOD,
                                  f"HTTP compression method '{encoding}' is not available on this server") from None
        self._identity = isinstance(self._decoder, _Identity)
        self._receive = receive
        self._limit = limit
        self._raw = self._decoded = 0
        self.done = False
        self.disconnected = False
        if content_length is not None and content_length > limit:
            raise self._too_large(content_length)

    def _too_large(self, size: int) -> ClickHouseError:
        return ClickHouseError(errors.QUERY_IS_TOO_LARGE,
                               f"Request body of {size} bytes exceeds the limit of {self._limit} bytes "
                               "(CLICKHOUSE_MAX_BODY_BYTES)")

    async def next_raw(self) -> bytes:
        """Next raw (still encoded) piece; b'' at the end."""
        while not self.done:
            msg = await self._receive()
            if msg["type"] == "http.disconnect":
                self.done = self.disconnected = True
                raise ConnectionAbortedError("client disconnected")
            self.done = not msg.get("more_body", False)
            data = msg.get("body", b"")
            if data:
                self._raw += len(data)
                if self._raw > self._limit:
                    raise self._too_large(self._raw)
                return data
        return b""

    def decode(self, data: bytes) -> bytes:
        """Decode raw bytes (call in order; may run on a worker thread)."""
        if self._identity:
            out = data
        else:
            try:
                out = self._decoder.decompress(data)
            except Exception as exc:
                raise ClickHouseError(errors.CANNOT_DECOMPRESS, f"Cannot decompress request body: {exc}") from None
        self._decoded += len(out)
        if self._decoded > self._limit:
            raise self._too_large(self._decoded)
        return out

    async def read_head(self, want: int) -> bytes:
        """Decoded bytes from the start of the body: at least `want` of them, or the whole body."""
        parts, size = [], 0
        while size < want and (raw := await self.next_raw()):
            part = self.decode(raw)
            parts.append(part)
            size += len(part)
        return b"".join(parts)

    async def read_all(self) -> bytes:
        """The rest of the body, decoded."""
        parts = []
        while (raw := await self.next_raw()):
            parts.append(raw)
        return self.decode(b"".join(parts)) if parts else b""
