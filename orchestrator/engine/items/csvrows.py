"""Step Functions' rules for text-delimited items (pure: no S3, no boto3).

As the ItemReader documentation states them: fields are strings; a field may be quoted
with ``"`` and then hold the delimiter and newlines; ``""`` inside quotes is one quote; a
backslash escapes a backslash, a quote or the delimiter, and before any other character is
dropped; a row with fewer fields than the header gets empty strings, one with more has the
extra fields skipped. Blank lines carry no item.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

#: ``ReaderConfig.CSVDelimiter`` values and their characters (``COMMA`` is the default).
DELIMITERS: dict[str, str] = {
    "COMMA": ",",
    "PIPE": "|",
    "SEMICOLON": ";",
    "SPACE": " ",
    "TAB": "\t",
}

#: Step Functions supports CSV headers of up to 10 KiB.
MAX_HEADER_BYTES = 10 * 1024


def delimiter_of(name: str | None) -> str:
    """The character of a ``CSVDelimiter`` name; ``ValueError`` for an unknown one."""
    if name is None:
        return ","
    try:
        return DELIMITERS[name]
    except KeyError:
        raise ValueError(
            f"unknown CSVDelimiter {name!r} (expected one of {', '.join(DELIMITERS)})"
        ) from None


def rows(lines: Iterable[str], delimiter: str = ",") -> Iterator[list[str]]:
    """Records of ``lines`` (each ending in its newline, as read), blank lines skipped.

    The reader pulls one line at a time and yields a record as soon as it is complete, so a
    caller counting the bytes of the lines it hands over knows where each record ends.
    """
    reader = csv.reader(
        lines,
        delimiter=delimiter,
        quotechar='"',
        doublequote=True,
        escapechar="\\",
        skipinitialspace=False,
        strict=False,
    )
    for record in reader:
        if record:
            yield record


def to_item(header: Sequence[str], record: Sequence[str]) -> dict[str, str]:
    """``record`` keyed by ``header``: missing fields are ``""``, extra ones dropped."""
    return {name: record[i] if i < len(record) else "" for i, name in enumerate(header)}


def parse(text: str, header: Sequence[str] | None = None, delimiter: str = ",") -> list[dict]:
    """Every item of a whole CSV text; the first record is the header unless one is given
    (a convenience for small texts and tests; the S3 reader streams instead)."""
    records = rows(text.splitlines(keepends=True), delimiter)
    if header is None:
        first = next(records, None)
        if first is None:
            return []
        header = [first[0].lstrip("\ufeff"), *first[1:]]
    return [to_item(header, record) for record in records]
