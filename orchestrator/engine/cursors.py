"""Listing cursors: where a listing of executions goes on, one position per partition.

A listing merges the partitions' indexes newest first (``RedisStore.list_execution_page``).
A single position in that merge would make page k cost k pages in every partition (the
merge must be redone from the top); a position in each partition's index costs one page
per partition wherever the page is. The cursor's text is the positions joined by dots
(``"12"`` with one partition, ``"3.0.5.4"`` with four), short enough for a URL's query
and opaque to the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.errors import InvalidInputError

#: A cursor's text: positions, dot-separated (one per partition: at most 256, which
#: :data:`CURSOR_MAX_LENGTH` bounds; a bounded repetition here would compile to a
#: regex too large for pydantic's engine).
CURSOR_PATTERN = re.compile(r"\d{1,12}(\.\d{1,12})*")
#: The longest text :data:`CURSOR_PATTERN` accepts.
CURSOR_MAX_LENGTH = 256 * 13 - 1


@dataclass(frozen=True)
class ListingCursor:
    """How many entries of each partition's index a listing has passed."""

    positions: tuple[int, ...]

    @classmethod
    def start(cls, partitions: int) -> ListingCursor:
        """The cursor of a listing's first page."""
        return cls((0,) * partitions)

    @classmethod
    def parse(cls, text: str | int | None, partitions: int) -> ListingCursor:
        """The cursor ``text`` (a previous page's, or None/"" for the first page) of a
        deployment of ``partitions`` partitions; a bare ``0`` starts anywhere.

        Raises:
            InvalidInputError: not a cursor's text, or one of another partition count.
        """
        if text is None or text == "" or str(text) == "0":
            return cls.start(partitions)
        text = str(text)
        if len(text) > CURSOR_MAX_LENGTH or not CURSOR_PATTERN.fullmatch(text):
            raise InvalidInputError(f"cursor {text[:40]!r} is not a listing's cursor")
        positions = tuple(int(part) for part in text.split("."))
        if len(positions) != partitions:
            raise InvalidInputError(
                f"cursor {text[:40]!r} is not one of this listing's: it names "
                f"{len(positions)} partitions, this deployment has {partitions}"
            )
        return cls(positions)

    @property
    def passed(self) -> int:
        """Entries passed in all (with the indexes' sizes: whether any are left)."""
        return sum(self.positions)

    def text(self) -> str:
        """The cursor as the caller passes it back."""
        return ".".join(str(position) for position in self.positions)

    def __str__(self) -> str:
        return self.text()
