"""``ItemReader`` from S3, read in pages through a resumable cursor.

:func:`open_reader` gives an :class:`ItemCursor`; ``next_page(n)`` returns up to ``n``
items and the cursor's state after them. The state is a small JSON object (offsets, a
count, a key), never items: the engine stores it (in Redis) and a process that takes over
after a crash reopens the reader with ``open_reader(..., state=saved)`` and goes on from
there. What each source keeps:

* ``s3:getObject`` + ``JSON``: the object is parsed whole (an array, or the array at
  ``ReaderConfig.ItemsPointer``), once per process, up to :data:`MAX_JSON_BYTES`; the
  state is the index of the next item.
* ``JSONL`` and ``CSV``: the state is the byte offset after the last item read; each page
  is one ranged GET from there (``If-Match`` the ETag seen at the start, so an object
  replaced mid-run fails the read instead of mixing two versions). A ``.gz`` object is
  streamed from its start and the first ``offset`` decompressed bytes skipped.
* ``MANIFEST`` (an S3 Inventory ``manifest.json``, CSV format): the index of the data file
  and the offset in it, as above.
* ``s3:listObjectsV2``: the last key returned (the next page lists ``StartAfter`` it).

Every state also counts the items returned, so ``MaxItems`` holds across resumes.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from orchestrator.engine.items import csvrows
from orchestrator.engine.items.aws import error_code, is_aws_error, s3_client
from orchestrator.engine.items.batcher import batch_input_of, fit
from orchestrator.errors import DefinitionIssue, ItemReaderFailed

GET_OBJECT = "arn:aws:states:::s3:getObject"
LIST_OBJECTS_V2 = "arn:aws:states:::s3:listObjectsV2"
RESOURCES = (GET_OBJECT, LIST_OBJECTS_V2)
INPUT_TYPES = ("JSON", "JSONL", "CSV", "MANIFEST")
HEADER_LOCATIONS = ("FIRST_ROW", "GIVEN")

#: Step Functions stops reading after at most this many items.
MAX_ITEMS_LIMIT = 100_000_000
#: A JSON object is parsed whole: larger ones fail the read (use JSONL for big data sets).
MAX_JSON_BYTES = 256 * 1024 * 1024
#: Step Functions reads items of up to 8 MB from a CSV, JSON or JSONL file.
MAX_ITEM_BYTES = 8 * 1024 * 1024
#: Bytes asked of S3 per read of a streamed body.
CHUNK_BYTES = 256 * 1024

CursorState = dict[str, Any]


def validate_item_reader(item_reader: Any, path: str = "$.ItemReader") -> list[DefinitionIssue]:
    """What is wrong with an ``ItemReader`` definition for this reader (empty if nothing):
    the resource, ``ReaderConfig`` (input type, CSV header and delimiter, ``MaxItems``)."""
    issues: list[DefinitionIssue] = []
    if not isinstance(item_reader, Mapping):
        return [DefinitionIssue(path, "ItemReader must be an object")]
    resource = item_reader.get("Resource")
    if resource not in RESOURCES:
        issues.append(
            DefinitionIssue(
                f"{path}.Resource",
                f"unsupported ItemReader resource {resource!r} (expected one of "
                f"{', '.join(RESOURCES)})",
            )
        )
    config = item_reader.get("ReaderConfig", {})
    if not isinstance(config, Mapping):
        return [*issues, DefinitionIssue(f"{path}.ReaderConfig", "must be an object")]
    cpath = f"{path}.ReaderConfig"
    input_type = config.get("InputType")
    if config.get("Transformation", "NONE") != "NONE":
        issues.append(DefinitionIssue(f"{cpath}.Transformation", "only NONE is supported"))
    manifest_type = config.get("ManifestType")
    if manifest_type not in (None, "S3_INVENTORY"):
        issues.append(
            DefinitionIssue(f"{cpath}.ManifestType", f"unsupported ManifestType {manifest_type!r}")
        )
    if resource == GET_OBJECT:
        if manifest_type == "S3_INVENTORY" and input_type is not None:
            issues.append(
                DefinitionIssue(
                    f"{cpath}.InputType", "must be absent with ManifestType S3_INVENTORY"
                )
            )
        elif manifest_type is None and input_type not in INPUT_TYPES:
            issues.append(
                DefinitionIssue(
                    f"{cpath}.InputType",
                    f"unsupported InputType {input_type!r} (expected one of "
                    f"{', '.join(INPUT_TYPES)})",
                )
            )
    elif resource == LIST_OBJECTS_V2 and input_type is not None:
        issues.append(
            DefinitionIssue(f"{cpath}.InputType", "listObjectsV2 reads object metadata only")
        )
    location = config.get("CSVHeaderLocation")
    if location is not None and location not in HEADER_LOCATIONS:
        issues.append(
            DefinitionIssue(
                f"{cpath}.CSVHeaderLocation", f"must be FIRST_ROW or GIVEN, not {location!r}"
            )
        )
    headers = config.get("CSVHeaders")
    if location == "GIVEN" and not (
        isinstance(headers, list) and headers and all(isinstance(h, str) for h in headers)
    ):
        issues.append(
            DefinitionIssue(f"{cpath}.CSVHeaders", "GIVEN needs CSVHeaders, an array of strings")
        )
    if location != "GIVEN" and headers is not None:
        issues.append(
            DefinitionIssue(f"{cpath}.CSVHeaders", "only allowed with CSVHeaderLocation GIVEN")
        )
    try:
        csvrows.delimiter_of(config.get("CSVDelimiter"))
    except ValueError as exc:
        issues.append(DefinitionIssue(f"{cpath}.CSVDelimiter", str(exc)))
    max_items = config.get("MaxItems")
    if max_items is not None and not (
        isinstance(max_items, int) and not isinstance(max_items, bool) and 0 <= max_items
    ):
        issues.append(DefinitionIssue(f"{cpath}.MaxItems", "must be a non-negative integer"))
    return issues


class ItemCursor:
    """Pages of items from one ``ItemReader`` source; see the module docstring."""

    def __init__(self, state: CursorState, max_items: int | None) -> None:
        self._state = dict(state)
        self._state.setdefault("n", 0)
        self._state.setdefault("done", False)
        limit = MAX_ITEMS_LIMIT if not max_items else min(max_items, MAX_ITEMS_LIMIT)
        self.max_items = limit
        #: State after each item of the last page (``page_states[k]`` follows item ``k``),
        #: so a caller that uses only part of a page can ``seek`` back to where it stopped.
        self.page_states: list[CursorState] = []

    @property
    def state(self) -> CursorState:
        """The JSON-able state after the last item returned."""
        return dict(self._state)

    @property
    def done(self) -> bool:
        """Whether every item (up to ``MaxItems``) has been returned."""
        return bool(self._state["done"]) or self._state["n"] >= self.max_items

    def seek(self, state: CursorState) -> None:
        """Go back (or on) to a state this cursor returned."""
        if state.get("t") != self._state.get("t"):
            raise ValueError(
                f"cursor state of a {state.get('t')!r} reader, not {self._state['t']!r}"
            )
        self._state = dict(state)

    def next_page(
        self, max_items: int, *, max_bytes: int | None = None, min_items: int = 1
    ) -> tuple[list[Any], CursorState]:
        """Up to ``max_items`` further items (fewer only at the end) and the state after them.

        ``max_bytes``: the page also ends once it holds ``min_items`` items spanning at
        least that many bytes of the source (JSONL, CSV and S3 Inventory data, whose state
        is a byte offset; other sources ignore it): a bound on the memory a page of large
        items takes. Failures to read are ``States.ItemReaderFailed``
        (:class:`ItemReaderFailed`).
        """
        if max_items <= 0:
            raise ValueError("max_items must be positive")
        want = min(max_items, self.max_items - self._state["n"])
        self.page_states = []
        if self.done or want <= 0:
            self._state["done"] = True
            return [], self.state
        items: list[Any] = []
        source = self._read(want)
        spanned, offset, data_file = 0, self._state.get("o"), self._state.get("f")
        try:
            for item, changes in source:
                items.append(item)
                after = {**self._state, **changes, "n": self._state["n"] + 1}
                self._state = after
                self.page_states.append(dict(after))
                if len(items) >= want:
                    break
                if max_bytes is not None and "o" in changes:
                    # A new data file (S3 Inventory) starts again from offset 0.
                    same = changes.get("f") == data_file
                    spanned += changes["o"] - offset if same else changes["o"]
                    offset, data_file = changes["o"], changes.get("f")
                    if spanned >= max_bytes and len(items) >= min_items:
                        break
            else:
                self._state["done"] = True
        except ItemReaderFailed:
            raise
        except Exception as exc:
            if is_aws_error(exc):
                raise ItemReaderFailed(self._describe_failure(exc)) from exc
            raise
        finally:
            source.close()  # type: ignore[attr-defined]  # ends the S3 body of a short page
        if self._state["n"] >= self.max_items:
            self._state["done"] = True
        if self.page_states:
            self.page_states[-1] = self.state
        return items, self.state

    def _describe_failure(self, exc: BaseException) -> str:
        return f"{error_code(exc)}: {exc}"

    def _read(self, want: int) -> Iterator[tuple[Any, CursorState]]:
        """(item, state changes after it) from the current state, lazily."""
        raise NotImplementedError


class _S3Object:
    """One object of a bucket, read whole or from a byte offset."""

    def __init__(self, client: Any, bucket: str, key: str, version: str | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.version = version
        self.gzip = key.endswith(".gz")

    def _args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.version:
            args["VersionId"] = self.version
        return args

    def head(self) -> tuple[int, str]:
        """(size, ETag)."""
        try:
            meta = self.client.head_object(**self._args())
        except Exception as exc:
            if is_aws_error(exc):
                raise ItemReaderFailed(
                    f"cannot read s3://{self.bucket}/{self.key}: {error_code(exc)}"
                ) from exc
            raise
        return int(meta["ContentLength"]), str(meta.get("ETag", ""))

    def read_all(self, limit: int) -> bytes:
        size, _ = self.head()
        if size > limit:
            raise ItemReaderFailed(
                f"s3://{self.bucket}/{self.key} is {size} bytes, over the {limit} bytes a "
                "JSON object may have (it is parsed whole); use InputType JSONL for large sets"
            )
        body = self.client.get_object(**self._args())["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        if self.gzip:
            data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
            if len(data) > limit:
                raise ItemReaderFailed(
                    f"s3://{self.bucket}/{self.key} decompresses to over {limit} bytes"
                )
        return data

    def lines(self, offset: int, size: int, etag: str) -> Iterator[tuple[bytes, int]]:
        """(line without its newline, offset after its newline) from ``offset`` on."""
        if self.gzip:
            chunks = self._gunzipped_from(offset, etag)
        elif offset >= size:
            return
        else:
            chunks = self._chunks(Range=f"bytes={offset}-", IfMatch=etag)
        buffer = b""
        position = offset
        for chunk in chunks:
            buffer += chunk
            start = 0
            while True:
                newline = buffer.find(b"\n", start)
                if newline < 0:
                    break
                line = buffer[start:newline]
                position += newline + 1 - start
                start = newline + 1
                yield line, position
            buffer = buffer[start:]
            if len(buffer) > MAX_ITEM_BYTES:
                raise ItemReaderFailed(
                    f"s3://{self.bucket}/{self.key}: a line at byte {position} is longer than "
                    f"{MAX_ITEM_BYTES} bytes"
                )
        if buffer:
            yield buffer, position + len(buffer)

    def _chunks(self, **extra: Any) -> Iterator[bytes]:
        args = {**self._args(), **{k: v for k, v in extra.items() if v}}
        body = self.client.get_object(**args)["Body"]
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()

    def _gunzipped_from(self, offset: int, etag: str) -> Iterator[bytes]:
        # A gzip stream cannot be entered in the middle: skip the first `offset` bytes.
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        skip = offset
        for chunk in self._chunks(IfMatch=etag):
            data = inflater.decompress(chunk)
            if skip:
                dropped = min(skip, len(data))
                data = data[dropped:]
                skip -= dropped
            if data:
                yield data
        tail = inflater.flush()
        if tail:
            yield tail[skip:]


def _decode(line: bytes, where: str) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ItemReaderFailed(f"{where}: not UTF-8 ({exc})") from exc


def _records(
    source: Iterator[tuple[bytes, int]], delimiter: str, where: str
) -> Iterator[tuple[list[str], int]]:
    """CSV records of ``source`` lines and the byte offset after each."""
    position = [0]

    def texts() -> Iterator[str]:
        for line, after in source:
            position[0] = after
            yield _decode(line, where) + "\n"

    for record in csvrows.rows(texts(), delimiter):
        yield record, position[0]


class _JsonCursor(ItemCursor):
    def __init__(
        self, obj: _S3Object, pointer: str | None, state: CursorState, max_items: int | None
    ) -> None:
        super().__init__({"t": "json", "i": 0, **state}, max_items)
        self._obj = obj
        self._pointer = pointer
        self._items: list[Any] | None = None

    def _load(self) -> list[Any]:
        if self._items is None:
            where = f"s3://{self._obj.bucket}/{self._obj.key}"
            raw = self._obj.read_all(MAX_JSON_BYTES)
            try:
                value = json.loads(raw.decode("utf-8-sig"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ItemReaderFailed(f"{where} is not valid JSON: {exc}") from exc
            if self._pointer:
                value = _resolve_pointer(value, self._pointer, where)
            if not isinstance(value, list):
                raise ItemReaderFailed(
                    f"{where}: InputType JSON needs an array, found {type(value).__name__}"
                )
            self._items = value
        return self._items

    def _read(self, want: int) -> Iterator[tuple[Any, CursorState]]:
        items = self._load()
        index = self._state["i"]
        while index < len(items):
            item = items[index]
            index += 1
            yield item, {"i": index}


def _resolve_pointer(value: Any, pointer: str, where: str) -> Any:
    """RFC 6901 JSON Pointer (``ReaderConfig.ItemsPointer``)."""
    if not pointer.startswith("/"):
        raise ItemReaderFailed(f"ItemsPointer {pointer!r} must start with '/'")
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            raise ItemReaderFailed(f"{where}: ItemsPointer {pointer!r} matches nothing")
    return value


class _LinesCursor(ItemCursor):
    """JSONL and CSV from one object: the state is a byte offset."""

    def __init__(
        self,
        obj: _S3Object,
        kind: str,
        state: CursorState,
        max_items: int | None,
        *,
        header: list[str] | None = None,
        delimiter: str = ",",
    ) -> None:
        super().__init__({"t": kind, "o": 0, **state}, max_items)
        self._obj = obj
        self._given_header = header
        self._header: list[str] | None = header
        self._delimiter = delimiter
        if "e" not in self._state:
            size, etag = obj.head()
            self._state.update(s=size, e=etag)

    @property
    def _where(self) -> str:
        return f"s3://{self._obj.bucket}/{self._obj.key}"

    def _lines(self, offset: int) -> Iterator[tuple[bytes, int]]:
        return self._obj.lines(offset, self._state["s"], self._state["e"])

    def _read(self, want: int) -> Iterator[tuple[Any, CursorState]]:
        if self._state["t"] == "jsonl":
            yield from self._jsonl()
        else:
            yield from self._csv()

    def _jsonl(self) -> Iterator[tuple[Any, CursorState]]:
        for line, after in self._lines(self._state["o"]):
            text = _decode(line, self._where)
            if self._state["o"] == 0 and text.startswith("\ufeff"):
                text = text[1:]
            if not text.strip():
                self._state["o"] = after
                continue
            try:
                item = json.loads(text)
            except ValueError as exc:
                raise ItemReaderFailed(
                    f"{self._where}: line ending at byte {after} is not JSON: {exc}"
                ) from exc
            yield item, {"o": after}

    def _csv(self) -> Iterator[tuple[Any, CursorState]]:
        offset = self._state["o"]
        if self._header is None:
            offset = max(offset, self._read_header())
        assert self._header is not None
        position = [offset]
        source = self._lines(offset)

        def texts() -> Iterator[str]:
            for line, after in source:
                position[0] = after
                yield _decode(line, self._where) + "\n"

        try:
            for record in csvrows.rows(texts(), self._delimiter):
                yield csvrows.to_item(self._header, record), {"o": position[0]}
        finally:
            # Closing the line source closes the S3 body even when the page ends early.
            close: Callable[[], None] | None = getattr(source, "close", None)
            if close is not None:
                close()

    def _read_header(self) -> int:
        """Read the first record (``FIRST_ROW``) and return the offset after it."""
        position = [0]
        source = self._lines(0)

        def texts() -> Iterator[str]:
            for line, after in source:
                if after > csvrows.MAX_HEADER_BYTES + 2:
                    raise ItemReaderFailed(
                        f"{self._where}: the CSV header is longer than "
                        f"{csvrows.MAX_HEADER_BYTES} bytes"
                    )
                position[0] = after
                yield _decode(line, self._where) + "\n"

        try:
            first = next(csvrows.rows(texts(), self._delimiter), None)
        finally:
            source.close()  # type: ignore[attr-defined]
        if first is None:
            self._header = []
            return self._state["s"]
        first[0] = first[0].lstrip("\ufeff")
        self._header = first
        return position[0]


class _ManifestCursor(ItemCursor):
    """An S3 Inventory report: its ``manifest.json`` names gzipped CSV data files."""

    def __init__(
        self, obj: _S3Object, state: CursorState, max_items: int | None, delimiter: str
    ) -> None:
        super().__init__({"t": "manifest", "f": 0, "o": 0, **state}, max_items)
        self._client = obj.client
        where = f"s3://{obj.bucket}/{obj.key}"
        try:
            manifest = json.loads(obj.read_all(MAX_JSON_BYTES).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ItemReaderFailed(f"{where} is not an S3 Inventory manifest: {exc}") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
            raise ItemReaderFailed(f"{where} is not an S3 Inventory manifest (no 'files')")
        file_format = manifest.get("fileFormat", "CSV")
        if file_format != "CSV":
            raise ItemReaderFailed(
                f"{where}: the inventory is {file_format}; Step Functions reads CSV inventories"
            )
        self._schema = [name.strip() for name in str(manifest.get("fileSchema", "")).split(",")]
        destination = str(manifest.get("destinationBucket", obj.bucket))
        self._bucket = destination.removeprefix("arn:aws:s3:::")
        self._files = [str(entry["key"]) for entry in manifest["files"]]
        self._delimiter = delimiter

    def _read(self, want: int) -> Iterator[tuple[Any, CursorState]]:
        while self._state["f"] < len(self._files):
            index = self._state["f"]
            data = _S3Object(self._client, self._bucket, self._files[index])
            size, etag = data.head()
            source = data.lines(self._state["o"], size, etag)
            where = f"s3://{data.bucket}/{data.key}"
            try:
                for record, after in _records(source, self._delimiter, where):
                    yield csvrows.to_item(self._schema, record), {"f": index, "o": after}
            finally:
                source.close()  # type: ignore[attr-defined]
            self._state["f"] = index + 1
            self._state["o"] = 0


class _ListCursor(ItemCursor):
    """``s3:listObjectsV2``: one item of metadata per object, in key order."""

    def __init__(
        self, client: Any, parameters: Mapping[str, Any], state: CursorState, max_items: int | None
    ) -> None:
        super().__init__({"t": "list", "a": None, **state}, max_items)
        self._client = client
        self._args = {
            k: v
            for k, v in parameters.items()
            if k not in ("StartAfter", "ContinuationToken", "MaxKeys")
        }

    def _read(self, want: int) -> Iterator[tuple[Any, CursorState]]:
        while True:
            args = dict(self._args)
            if self._state["a"] is not None:
                args["StartAfter"] = self._state["a"]
            args["MaxKeys"] = max(1, min(1000, want))
            page = self._client.list_objects_v2(**args)
            contents = page.get("Contents", [])
            for obj in contents:
                item = {
                    "Etag": obj.get("ETag"),
                    "Key": obj["Key"],
                    "LastModified": int(obj["LastModified"].timestamp()),
                    "Size": obj.get("Size"),
                    "StorageClass": obj.get("StorageClass", "STANDARD"),
                }
                yield item, {"a": obj["Key"]}
            if not page.get("IsTruncated") or not contents:
                return


def open_reader(
    item_reader: Mapping[str, Any],
    parameters: Mapping[str, Any],
    *,
    max_items: int | None = None,
    state: CursorState | None = None,
    client: Any = None,
) -> ItemCursor:
    """A cursor over the items of ``item_reader`` (the state's ``ItemReader`` definition).

    ``parameters``: its ``Parameters``/``Arguments`` already evaluated (``Bucket``, ``Key``
    and ``VersionId`` for getObject; ``Bucket``, ``Prefix``... for listObjectsV2).
    ``max_items``: ``MaxItems`` (or what ``MaxItemsPath`` resolved to); when None, the
    ``ReaderConfig.MaxItems`` literal if any; 0 or None means all. ``state``: a state a
    cursor of the same reader returned, to resume from. ``client``: an S3 client (default:
    :func:`~orchestrator.engine.items.aws.s3_client`).

    Raises ``MissingOptionalDependency`` without boto3, ``ItemReaderFailed`` when the
    source cannot be read or the definition is not one this reader supports.
    """
    issues = validate_item_reader(item_reader)
    if issues:
        raise ItemReaderFailed("; ".join(str(issue) for issue in issues))
    config = item_reader.get("ReaderConfig", {}) or {}
    if max_items is None:
        max_items = config.get("MaxItems")
    if client is None:
        client = s3_client("$.ItemReader")
    state = dict(state or {})
    bucket = parameters.get("Bucket")
    if not isinstance(bucket, str) or not bucket:
        raise ItemReaderFailed("ItemReader Parameters need a Bucket")
    if item_reader["Resource"] == LIST_OBJECTS_V2:
        return _ListCursor(client, parameters, state, max_items)
    key = parameters.get("Key")
    if not isinstance(key, str) or not key:
        raise ItemReaderFailed("ItemReader Parameters need a Key for s3:getObject")
    obj = _S3Object(client, bucket, key, parameters.get("VersionId"))
    input_type = config.get("InputType") or "MANIFEST"  # ManifestType S3_INVENTORY
    delimiter = csvrows.delimiter_of(config.get("CSVDelimiter"))
    try:
        if input_type == "JSON":
            return _JsonCursor(obj, config.get("ItemsPointer"), state, max_items)
        if input_type == "JSONL":
            return _LinesCursor(obj, "jsonl", state, max_items)
        if input_type == "CSV":
            header = (
                config.get("CSVHeaders") if config.get("CSVHeaderLocation") == "GIVEN" else None
            )
            return _LinesCursor(obj, "csv", state, max_items, header=header, delimiter=delimiter)
        return _ManifestCursor(obj, state, max_items, delimiter)
    except Exception as exc:
        if is_aws_error(exc):
            raise ItemReaderFailed(f"{error_code(exc)}: {exc}") from exc
        raise


#: Items an advance reads at most in one page to cut into batches (one ranged S3 GET of a
#: JSONL or CSV object): ``read_batches`` of 100 batches of 100 items reads them at once
#: instead of in 100 GETs, one after another.
BATCH_PAGE_ITEMS = 10_000
#: Bytes of the source such a page spans at most (once it holds one batch's window): a
#: page of large items holds fewer of them.
BATCH_PAGE_BYTES = 4 * 1024 * 1024


def read_batches(
    cursor: ItemCursor,
    count: int,
    max_items_per_batch: int | None,
    max_input_bytes_per_batch: int | None = None,
    batch_input: Any = None,
    *,
    page_items: int = 1000,
    max_page_items: int = BATCH_PAGE_ITEMS,
    max_page_bytes: int = BATCH_PAGE_BYTES,
) -> list[tuple[int, dict[str, Any]]]:
    """Up to ``count`` next ``ItemBatcher`` child inputs from one page of ``cursor``, each
    with the number (from 0, across resumes) of its first item; ``[]`` when the items are
    exhausted. The cursor is left just after the last item taken.

    Each batch is the one :func:`read_batch` would make from the same state, one after
    another: a batch is cut (:func:`fit`) from a window of its item cap
    (``max_items_per_batch``, else ``page_items``) that the page holds whole, or that ends
    with the data; a window that the page cuts short is left to the next read. A page
    holds at most ``max_page_items`` items (and spans at most ``max_page_bytes`` of the
    source, :meth:`ItemCursor.next_page`), and always one whole window.
    """
    if count <= 0:
        return []
    cap = max_items_per_batch or page_items
    first = int(cursor.state.get("n", 0))
    items, _ = cursor.next_page(
        max(cap, min(count * cap, max_page_items)), max_bytes=max_page_bytes, min_items=cap
    )
    states = cursor.page_states
    complete = cursor.done  # the page holds every item left
    out: list[tuple[int, dict[str, Any]]] = []
    position = 0
    while position < len(items) and len(out) < count:
        window = items[position : position + cap]
        if len(window) < cap and not complete:
            break  # this batch may go on past the page
        taken = fit(window, max_items_per_batch, max_input_bytes_per_batch, batch_input)
        out.append((first + position, batch_input_of(window[:taken], batch_input)))
        position += taken
    if position < len(items):
        cursor.seek(states[position - 1])
    return out


def read_batch(
    cursor: ItemCursor,
    max_items_per_batch: int | None,
    max_input_bytes_per_batch: int | None = None,
    batch_input: Any = None,
    *,
    page_items: int = 1000,
) -> tuple[dict[str, Any] | None, CursorState]:
    """The next ``ItemBatcher`` child input from ``cursor`` and the state after its last item
    (None when the items are exhausted). Reads one page and, when the byte cap ends the
    batch early, seeks the cursor back to just after the last item taken."""
    got = read_batches(
        cursor,
        1,
        max_items_per_batch,
        max_input_bytes_per_batch,
        batch_input,
        page_items=page_items,
    )
    return (got[0][1] if got else None), cursor.state
