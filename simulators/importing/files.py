"""Reading the user's files row by row: CSV (Python's csv module, cells kept verbatim as strings, so
decimal commas and odd time formats reach the parsers untouched) or Parquet (pyarrow, typed cells)."""
from __future__ import annotations

import csv
from collections.abc import Iterator

from simulators.importing.mapping import MappingError, Section


def columns(section: Section) -> list[str]:
    """The file's column names."""
    if not section.file.is_file():
        raise MappingError(f"{section.name}: {section.file} does not exist")
    if section.file.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        try:
            return list(pq.read_schema(section.file).names)
        except pa.ArrowException as exc:
            raise MappingError(f"{section.name}: {section.file} is not a readable Parquet file ({exc})") from None
    with _open_csv(section) as fh:
        try:
            return next(csv.reader(fh, **_dialect(section)), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            raise MappingError(f"{section.file.name} ({section.name}): cannot read its header as CSV ({exc}); "
                               f"check csv: encoding/delimiter in the mapping") from None


def check_columns(section: Section) -> None:
    """Every mapped source column exists, else one line naming it and the file's columns."""
    have = columns(section)
    for c in section.columns.values():
        if c.column is not None and c.column not in have:
            raise MappingError(f"{section.file.name} ({section.name}) has no column {c.column!r} (mapped to "
                               f"{c.field}); its columns: {', '.join(have) or 'none'}")


def count(section: Section) -> int:
    """Data rows (for the progress bar): Parquet's metadata, or a pass over the CSV."""
    if section.file.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq
        return pq.ParquetFile(section.file).metadata.num_rows
    return sum(1 for _ in rows(section))


def rows(section: Section) -> Iterator[tuple[int, dict]]:
    """(row number, {column: cell}), row 1 being the first data row (a CSV's line 2)."""
    if section.file.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq
        n = 0
        for batch in pq.ParquetFile(section.file).iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                n += 1
                yield n, row
        return
    with _open_csv(section) as fh:
        reader = csv.DictReader(fh, **_dialect(section))
        n = 0
        try:
            for n, row in enumerate(reader, start=1):
                yield n, row
        except (UnicodeDecodeError, csv.Error) as exc:
            raise MappingError(f"{section.file.name} ({section.name}), after data row {n}: cannot read it as CSV "
                               f"({exc}); check csv: encoding/delimiter in the mapping") from None


def _dialect(section: Section) -> dict:
    return {k: v for k, v in section.csv.items() if k != "encoding"}


def _open_csv(section: Section):
    try:
        # utf-8-sig: a byte-order mark (Excel's CSV export) is not part of the first column's name
        return section.file.open(newline="", encoding=section.csv.get("encoding", "utf-8-sig"))
    except OSError as exc:
        raise MappingError(f"{section.name}: cannot read {section.file} ({exc.strerror})") from None
