"""Text items: a folder's ``.txt`` file read as one text (:func:`read_text_file`: UTF-8, a byte-order mark dropped,
stripped, at most :data:`MAX_TEXT_FILE_BYTES`), and the Unicode check every text gets (:func:`check_unicode`)."""

from __future__ import annotations

from typing import Optional

from anycl.errors import DataError

MAX_TEXT_FILE_BYTES = 1 << 20  # the largest .txt file of a folder data set read as one text (1 MiB)


def read_text_file(path: str, max_bytes: Optional[int] = None) -> str:
    """One file of a folder data set as a text item: its UTF-8 text, stripped; DataError naming the file
    when it is larger than ``max_bytes`` (default :data:`MAX_TEXT_FILE_BYTES`), empty or not UTF-8."""
    limit = MAX_TEXT_FILE_BYTES if max_bytes is None else int(max_bytes)
    with open(path, "rb") as f:
        data = f.read(limit + 1)  # never more than the limit, whatever the file's size says
    if len(data) > limit:
        raise DataError(
            f"text file {path!r} is larger than {limit:,} bytes, the most a folder's .txt file is read as one "
            f"text; split it into files of one text each, or give a CSV/JSONL table of texts"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"text file {path!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            f"convert it to UTF-8 (e.g. iconv -t UTF-8) or remove it from the folder"
        ) from None
    if not text.strip():
        raise DataError(f"text file {path!r} is empty (no text); remove it from the folder")
    return text.strip()


def check_unicode(text: str, where: str) -> None:
    """DataError naming ``where`` when ``text`` is not valid Unicode: a lone surrogate (what decoding bytes with
    ``errors="surrogateescape"`` or a broken JSON ``\\ud800`` escape leaves) cannot be tokenized."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(
            f"{where} holds a lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start}, which is not "
            f"valid Unicode; fix the text where it was decoded (e.g. bytes.decode('utf-8', errors='replace'))"
        ) from None
