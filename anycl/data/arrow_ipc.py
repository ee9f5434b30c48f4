"""Reading an Arrow IPC stream's message headers without decoding it: whether its record batches carry compressed
buffers (LZ4 or zstd), which pyarrow decompresses into buffers of the sizes they declare.

A message's header is a flatbuffer (Arrow's ``Message.fbs``): the ``Message`` table holds the header's kind (field
1: 2 a dictionary batch, 3 a record batch) and the header (field 2); a ``RecordBatch`` table holds ``compression``
as field 3, present only when its buffers are compressed; a ``DictionaryBatch`` holds its ``RecordBatch`` as field 1.
Only these offsets are read (the flatbuffer rules: a table starts with a signed offset back to its vtable, whose
16-bit entries give each field's offset in the table, 0 when absent; a reference is an unsigned 32-bit offset
forward from where it is stored).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import List, Optional, Tuple

DICTIONARY_BATCH, RECORD_BATCH = 2, 3


def _table(buf: bytes, pos: int) -> Tuple[int, List[int]]:
    """(the table's position, its fields' offsets) for the flatbuffer table at ``pos``."""
    vtable = pos - struct.unpack_from("<i", buf, pos)[0]
    size = struct.unpack_from("<H", buf, vtable)[0]
    return pos, [struct.unpack_from("<H", buf, vtable + 4 + 2 * i)[0] for i in range((size - 4) // 2)]


def _field(buf: bytes, table: Tuple[int, List[int]], i: int) -> Optional[int]:
    """Where the table that field ``i`` refers to starts, or None when the field is absent."""
    pos, fields = table
    if i >= len(fields) or not fields[i]:
        return None
    at = pos + fields[i]
    return at + struct.unpack_from("<I", buf, at)[0]


def compressed(metadata) -> bool:
    """Whether the IPC message whose header flatbuffer is ``metadata`` (``pyarrow.ipc.Message.metadata``) is a record or
    dictionary batch with compressed buffers."""
    buf = bytes(metadata)
    message = _table(buf, struct.unpack_from("<I", buf, 0)[0])
    pos, fields = message
    kind = buf[pos + fields[1]] if len(fields) > 1 and fields[1] else 0
    header = _field(buf, message, 2)
    if header is None or kind not in (DICTIONARY_BATCH, RECORD_BATCH):
        return False
    batch = _table(buf, header)
    if kind == DICTIONARY_BATCH:
        data = _field(buf, batch, 1)
        if data is None:
            return False
        batch = _table(buf, data)
    return _field(buf, batch, 3) is not None


def has_compressed_buffers(path: Path) -> bool:
    """Whether the Arrow IPC stream file at ``path`` holds a compressed batch (read memory-mapped, message headers
    only); False for a file that is not an Arrow stream."""
    import pyarrow as pa  # lazy: pyarrow comes with datasets, only when a saved folder is read

    with pa.memory_map(str(path)) as source:
        try:
            return any(compressed(m.metadata) for m in pa.ipc.MessageReader.open_stream(source))
        except (pa.ArrowInvalid, struct.error, IndexError):
            return False
