"""Reading table files (CSV, TSV, JSON Lines, JSON, Parquet) into a pandas DataFrame, without silent damage
(the command line writes its tables with :mod:`anycl.cli.table_output`).

A delimited file is checked before pandas reads it:

- the separator: ``,`` for ``.csv`` and tab for ``.tsv`` unless ``sep=`` is given. When that reads as a
  single column but the file is clearly separated by ``;``, tab or ``|`` (the header and every row split
  into the same number of fields, at least two), that separator is used and said at INFO; when a single
  column's header or most of its values contain one of them without that consistency, the file is
  refused with a DataError saying which ``sep=`` to pass (``--sep`` on the command line);
- the width: a row with more or fewer fields than the header is a DataError naming its line (pandas
  would otherwise take the first field as an index, or drop or pad fields);
- the header: a column name given twice is a DataError naming it (pandas would rename the second
  ``name.1``, which the column convention then ignores);
- pandas never invents an index (``index_col=False``).

A JSON Lines file that does not parse is a DataError naming the line (pandas names a byte position).

A gzip-compressed file (``.csv.gz``, ``.tsv.gz``, ``.jsonl.gz``) is first decompressed in 1 MiB pieces and
counted: one that expands past :data:`MAX_EXPANSION` times its size (and past :data:`EXPANSION_FLOOR_BYTES`) is
refused before pandas reads it. Text tables compress 3 to 20 times; a 611 KB file of one repeated row expands to
210 MB, and pandas took 277 MB more to read it, so a few MB could have taken gigabytes.

A Parquet file is held to the same bound before pandas reads it (:func:`check_parquet`): the sizes its metadata
declares (pages after decompression, rows × columns), then the text its string columns hold once each reference
to a dictionary value is counted, read as dictionary arrays (indices and the distinct values, never the repeated
strings). A 446-byte file whose 5,000 rows each point to one 100 KB dictionary string took 2 GB to read before.
A file the bound refuses is better given as CSV or JSON Lines, whose size is their text.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from anycl.errors import DataError

log = logging.getLogger("anycl")

CANDIDATES = (";", "\t", "|", ",")
MAX_EXPANSION = 100  # a .gz or Parquet table may hold at most this many times its size (Apache POI's zip-bomb ratio)
EXPANSION_FLOOR_BYTES = 64 * 2**20  # up to this much decompressed, any ratio is read
PARQUET_INSTEAD = "give it as CSV or JSON Lines (plain text has no expansion to bound)"
_SCAN_ROWS = 2000  # rows looked at to sniff a separator (the width check reads every row)


def _name(sep: str) -> str:
    return {"\t": "tab ('\\t')", ",": "','", ";": "';'", "|": "'|'"}.get(sep, repr(sep))


def _open_text(path: Path):
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def check_expansion(path: Path) -> int:
    """Decompressed bytes of a gzip file, or DataError once they pass ``max(EXPANSION_FLOOR_BYTES, MAX_EXPANSION x
    its size)``: decompressed in 1 MiB pieces, never held whole."""
    size = path.stat().st_size
    limit = expansion_limit(size)
    total = 0
    with gzip.open(path, "rb") as f:
        while piece := f.read(1 << 20):
            total += len(piece)
            if total > limit:
                raise expansion_error(path, "expands to", size, limit, "decompress it and give the plain file")
    return total


def expansion_limit(size: int) -> int:
    """The most bytes a compressed or encoded data file of ``size`` bytes may decode to."""
    return max(EXPANSION_FLOOR_BYTES, MAX_EXPANSION * size)


def expansion_error(path: Path, what: str, size: int, limit: int, instead: str) -> DataError:
    return DataError(
        f"{str(path)!r} {what} more than {limit:,} bytes, over {MAX_EXPANSION} times its {size:,} bytes (a "
        f"compression bomb?); if it is real data, {instead} (or raise anycl.data.tables.MAX_EXPANSION)"
    )


def decoded_bytes(array) -> int:
    """Bytes an Arrow array takes once its dictionary-encoded strings are decoded (each reference counted)."""
    import pyarrow as pa  # lazy: pyarrow comes with pandas' Parquet support, only when a Parquet file is read
    import pyarrow.compute as pc  # lazy: as above

    if pa.types.is_dictionary(array.type):
        values = array.type.value_type
        if pa.types.is_primitive(values):  # numbers, dates: a fixed width a row
            return max(values.bit_width // 8, 1) * len(array)
        if not (pa.types.is_string(values) or pa.types.is_large_string(values) or pa.types.is_binary(values)):
            return int(array.dictionary_decode().nbytes)  # other value types (nested): rare, decoded to measure
        lengths = pc.take(pc.binary_length(array.dictionary), array.indices)
        return int(pc.sum(lengths).as_py() or 0) + 8 * len(array)
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        return decoded_bytes(array.flatten()) + 8 * len(array)
    if pa.types.is_struct(array.type):
        return sum(decoded_bytes(array.field(i)) for i in range(array.type.num_fields))
    return int(array.nbytes)


def check_parquet(path: Path) -> None:
    """DataError when a Parquet file would decode to more than ``max(EXPANSION_FLOOR_BYTES, MAX_EXPANSION x its
    size)``: by the page sizes and rows its metadata declares, then by its string columns' decoded text, measured on
    dictionary arrays (memory: the indices and the distinct values)."""
    import pyarrow.parquet as pq  # lazy: only when a Parquet file is read

    size = path.stat().st_size
    limit = expansion_limit(size)
    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    declared = sum(
        meta.row_group(r).column(c).total_uncompressed_size
        for r in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    )
    if max(declared, 8 * meta.num_rows * max(meta.num_columns, 1)) > limit:
        raise expansion_error(path, "declares", size, limit, PARQUET_INSTEAD)
    schema = parquet.schema
    strings = [schema.column(i).path for i in range(len(schema)) if schema.column(i).physical_type == "BYTE_ARRAY"]
    if strings:
        table = pq.read_table(path, read_dictionary=strings)
        if sum(decoded_bytes(chunk) for column in table.columns for chunk in column.chunks) > limit:
            raise expansion_error(path, "holds text of", size, limit, PARQUET_INSTEAD)


def _records(path: Path, sep: str) -> Iterator[Tuple[int, List[str]]]:
    """(line number where the record starts, fields) of every non-blank record."""
    old = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        with _open_text(path) as f:
            reader = csv.reader(f, delimiter=sep)
            line = 1
            for rec in reader:
                start, line = line, reader.line_num + 1
                if rec and not (len(rec) == 1 and rec[0] == ""):
                    yield start, rec
    finally:
        csv.field_size_limit(old)


def _sniff(path: Path, default: str) -> Optional[str]:
    """A separator other than ``default`` that splits the header and the first rows consistently, else
    None; raises DataError when a one-column table mostly contains another separator inconsistently."""
    try:
        head = [rec for _, (_, rec) in zip(range(_SCAN_ROWS), _records(path, default))]
    except csv.Error:
        return None
    if not head or len(head[0]) != 1:
        return None
    header, values = head[0][0], [r[0] for r in head[1:]]
    for c in CANDIDATES:
        if c == default:
            continue
        in_header = c in header
        share = sum(c in v for v in values) / max(1, len(values))
        if not in_header and (share <= 0.5 or c == ","):  # commas are common in prose: only a header counts
            continue
        try:
            split = [rec for _, (_, rec) in zip(range(_SCAN_ROWS), _records(path, c))]
        except csv.Error:
            split = []
        widths = {len(r) for r in split}
        if in_header and len(widths) == 1 and widths.pop() >= 2:
            return c
        if in_header:
            what = (
                f"its header contains {_name(c)}: it looks {_name(c)}-separated, but its rows split into "
                f"differing numbers of fields. Pass sep={c!r} (command line: --sep {c!r}) and fix the rows"
            )
        else:
            what = (
                f"{share:.0%} of its values contain {_name(c)}. If it is {_name(c)}-separated, pass sep={c!r} "
                f"(command line: --sep {c!r})"
            )
        raise DataError(
            f"{str(path)!r} reads as one column with separator {_name(default)}, but {what}; if it "
            f"really is one column of items, pass sep={default!r}"
        )
    return None


def _check_widths(path: Path, sep: str) -> None:
    records = _records(path, sep)
    try:
        first = next(records, None)
        if first is None:
            return
        header = first[1]
        _check_header(path, header)
        for line, rec in records:
            if len(rec) != len(header):
                raise DataError(
                    f"{str(path)!r} line {line}: {len(rec)} fields, but the header has {len(header)} ({header}); "
                    f"quote fields that contain the separator {_name(sep)} (or pass the right sep=)"
                )
    except csv.Error as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc}") from exc


def _check_header(path: Path, header: List[str]) -> None:
    seen: dict = {}
    for i, name in enumerate(header):
        if name in seen:
            raise DataError(
                f"{str(path)!r}: the header names column {name!r} twice (fields {seen[name] + 1} and {i + 1}); "
                f"rename or remove one (pandas would read the second as {name + '.1'!r}, and anycl would ignore it)"
            )
        seen[name] = i


def _bad_json_line(path: Path) -> Optional[str]:
    """'line N: <what json says>' for the first line of a JSON Lines file that does not parse, else None."""
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError as exc:
                return f"line {n} is not valid JSON ({getattr(exc, 'msg', exc)} at column {getattr(exc, 'colno', '?')})"
    return None


def _bad_json_document(path: Path) -> Optional[str]:
    """Where a file that is not JSON Lines fails as one JSON document ('line N, column C: ...'), else None
    (it parses, or it fails only after a first complete value: then it is JSON Lines)."""
    with _open_text(path) as f:
        try:
            json.load(f)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    return None


def _read_json_lines(path: Path, one_document: bool = False):
    """A JSON Lines file (``one_document``: a .json file that pandas could not read as one document)."""
    import pandas as pd  # lazy: pandas: slow to import, only when a table is read or written

    try:
        return pd.read_json(path, lines=True)
    except ValueError as exc:
        where = (_bad_json_document(path) if one_document else None) or _bad_json_line(path)
        if where is None:
            raise
        raise DataError(f"cannot read {str(path)!r}: {where}; fix or remove that line") from exc


def read_delimited(path: Path, default_sep: str, sep: Optional[str] = None):
    import pandas as pd  # lazy: pandas: slow to import, only when a table is read or written

    chosen = sep
    if chosen is None:
        chosen = _sniff(path, default_sep) or default_sep
        if chosen != default_sep:
            log.info("%s: read with separator %s (sniffed; pass sep= to choose another)", path.name, _name(chosen))
    elif chosen in ("\\t", "tab"):
        chosen = "\t"
    if not isinstance(chosen, str) or len(chosen) != 1:
        raise DataError(f"sep must be one character (e.g. ',', ';', '\\t', '|'), got {chosen!r}")
    _check_widths(path, chosen)
    return pd.read_csv(path, sep=chosen, index_col=False, keep_default_na=False, na_values=[""])


def read_table(path: Path, sep: Optional[str] = None):
    """A CSV, TSV, JSON Lines, JSON or Parquet file as a pandas DataFrame, or DataError.

    ``sep``: the field separator of a CSV/TSV file (default: sniffed, see the module docstring)."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    import pandas as pd  # lazy: pandas: slow to import, only when a table is read or written

    try:
        if path.suffix.lower() == ".gz":
            check_expansion(path)
        if suffix in (".csv", ".csv.gz"):
            df = read_delimited(path, ",", sep)
        elif suffix in (".tsv", ".tsv.gz"):
            df = read_delimited(path, "\t", sep)
        elif suffix in (".jsonl", ".jsonl.gz", ".ndjson"):
            df = _read_json_lines(path)
        elif suffix == ".json":
            try:
                df = pd.read_json(path)
            except ValueError:
                df = _read_json_lines(path, one_document=True)
        elif suffix == ".parquet":
            check_parquet(path)
            df = pd.read_parquet(path)
        else:
            raise DataError(f"cannot read {str(path)!r}: use a .csv, .tsv, .jsonl, .json or .parquet file, or a folder")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc}") from exc
    return df
