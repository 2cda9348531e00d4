"""The Distributed Map's S3 side against a local S3 (moto's server, started here; see
tests/aws.py): every ItemReader input, paging resumed from a cursor's JSON state,
MaxItems, listObjectsV2 past 1,000 keys, ItemBatcher over a cursor, and the ResultWriter
layout read back."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.engine.items import (
    ResultWriter,
    aws,
    open_reader,
    read_batch,
    read_batches,
    requires_aws,
    result_entry,
    s3_client,
)
from orchestrator.errors import (
    DefinitionError,
    ItemReaderFailed,
    MissingOptionalDependency,
    ResultWriterFailed,
)
from tests.aws import local_s3

boto3 = pytest.importorskip("boto3")  # the dev extra installs it; see pyproject.toml

BUCKET = "items"
GET = "arn:aws:states:::s3:getObject"
LIST = "arn:aws:states:::s3:listObjectsV2"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with local_s3():
        client = s3_client()
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(client: Any, key: str, body: str | bytes) -> None:
    client.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


def reader(input_type: str, **config: Any) -> dict[str, Any]:
    return {"Resource": GET, "ReaderConfig": {"InputType": input_type, **config}}


def drain(cursor: Any, page: int) -> list[Any]:
    """Every item, each page through a fresh cursor opened from the last state's JSON."""
    items: list[Any] = []
    while not cursor.done:
        got, state = cursor.next_page(page)
        items.extend(got)
        saved = json.loads(json.dumps(state))
        cursor = cursor._reopen(saved)
    return items


def reopenable(item_reader: dict, params: dict, client: Any, **kw: Any) -> Any:
    cursor = open_reader(item_reader, params, client=client, **kw)
    cursor._reopen = lambda state: reopenable_state(item_reader, params, client, state, **kw)
    return cursor


def reopenable_state(item_reader: dict, params: dict, client: Any, state: dict, **kw: Any) -> Any:
    cursor = open_reader(item_reader, params, client=client, state=state, **kw)
    cursor._reopen = lambda s: reopenable_state(item_reader, params, client, s, **kw)
    return cursor


def test_json_array_paged_and_resumed(s3: Any) -> None:
    data = [{"id": i} for i in range(25)]
    put(s3, "d/items.json", json.dumps(data))
    cursor = reopenable(reader("JSON"), {"Bucket": BUCKET, "Key": "d/items.json"}, s3)
    assert drain(cursor, 7) == data
    nested = {"inventory": {"products": {"featured": [1, 2, 3]}}}
    put(s3, "d/nested.json", json.dumps(nested))
    pointer = reader("JSON", ItemsPointer="/inventory/products/featured")
    cursor = open_reader(pointer, {"Bucket": BUCKET, "Key": "d/nested.json"}, client=s3)
    assert cursor.next_page(10)[0] == [1, 2, 3]
    put(s3, "d/object.json", json.dumps({"a": 1}))
    with pytest.raises(ItemReaderFailed, match="needs an array") as failure:
        open_reader(
            reader("JSON"), {"Bucket": BUCKET, "Key": "d/object.json"}, client=s3
        ).next_page(1)
    assert failure.value.error == "States.ItemReaderFailed"


def test_json_over_the_size_cap_fails_clearly(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.engine.items import reader as reader_module

    put(s3, "d/big.json", json.dumps(list(range(1000))))
    monkeypatch.setattr(reader_module, "MAX_JSON_BYTES", 100)
    cursor = open_reader(reader("JSON"), {"Bucket": BUCKET, "Key": "d/big.json"}, client=s3)
    with pytest.raises(ItemReaderFailed, match="JSONL"):
        cursor.next_page(1)


def test_jsonl_streams_by_byte_offset_and_resumes(s3: Any) -> None:
    data = [{"n": i, "text": "é" * (i % 5)} for i in range(103)]
    body = "\n".join(json.dumps(d, ensure_ascii=False) for d in data) + "\n\n"
    put(s3, "d/items.jsonl", body)
    cursor = reopenable(reader("JSONL"), {"Bucket": BUCKET, "Key": "d/items.jsonl"}, s3)
    first, state = cursor.next_page(10)
    assert first == data[:10]
    assert set(state) <= {"t", "o", "n", "done", "s", "e"} and state["n"] == 10
    assert len(json.dumps(state)) < 200  # a few numbers, never the items
    assert state["o"] == len(
        ("\n".join(json.dumps(d, ensure_ascii=False) for d in data[:10]) + "\n").encode()
    )
    assert first + drain(cursor._reopen(state), 9) == data
    # gzip: streamed from the start, offsets in decompressed bytes
    put(s3, "d/items.jsonl.gz", gzip.compress(body.encode()))
    gz = reopenable(reader("JSONL"), {"Bucket": BUCKET, "Key": "d/items.jsonl.gz"}, s3)
    assert drain(gz, 11) == data


def test_jsonl_page_holds_only_what_it_returns(s3: Any) -> None:
    put(s3, "d/bad.jsonl", '{"ok": 1}\nnot json\n')
    cursor = open_reader(reader("JSONL"), {"Bucket": BUCKET, "Key": "d/bad.jsonl"}, client=s3)
    assert cursor.next_page(1)[0] == [{"ok": 1}]
    with pytest.raises(ItemReaderFailed, match="not JSON"):
        cursor.next_page(1)


def test_an_object_replaced_mid_run_fails_the_read(s3: Any) -> None:
    put(s3, "d/changing.jsonl", "1\n2\n3\n")
    cursor = open_reader(reader("JSONL"), {"Bucket": BUCKET, "Key": "d/changing.jsonl"}, client=s3)
    assert cursor.next_page(1)[0] == [1]
    put(s3, "d/changing.jsonl", "9\n9\n9\n9\n")
    with pytest.raises(ItemReaderFailed, match="PreconditionFailed"):
        cursor.next_page(1)


CSV = 'userId,movieId,rating\n1,307,3.5\n1,"481,5",3.5\n\n2,1091\n3,4,5,6\n'
CSV_ITEMS = [
    {"userId": "1", "movieId": "307", "rating": "3.5"},
    {"userId": "1", "movieId": "481,5", "rating": "3.5"},
    {"userId": "2", "movieId": "1091", "rating": ""},
    {"userId": "3", "movieId": "4", "rating": "5"},
]


def test_csv_first_row_header_paged_and_resumed(s3: Any) -> None:
    put(s3, "d/ratings.csv", CSV)
    params = {"Bucket": BUCKET, "Key": "d/ratings.csv"}
    cursor = reopenable(reader("CSV", CSVHeaderLocation="FIRST_ROW"), params, s3)
    assert drain(cursor, 1) == CSV_ITEMS
    default = open_reader(reader("CSV"), params, client=s3)  # FIRST_ROW is the default
    assert default.next_page(10)[0] == CSV_ITEMS


def test_csv_given_headers_and_delimiter(s3: Any) -> None:
    put(s3, "d/pipes.csv", "1|307|3.5|1256677221\n1|481|3.5|1256677456\n")
    config = reader(
        "CSV",
        CSVHeaderLocation="GIVEN",
        CSVHeaders=["userId", "movieId", "rating", "timestamp"],
        CSVDelimiter="PIPE",
    )
    cursor = reopenable(config, {"Bucket": BUCKET, "Key": "d/pipes.csv"}, s3)
    assert drain(cursor, 1) == [
        {"userId": "1", "movieId": "307", "rating": "3.5", "timestamp": "1256677221"},
        {"userId": "1", "movieId": "481", "rating": "3.5", "timestamp": "1256677456"},
    ]


def test_csv_large_file_in_many_pages(s3: Any) -> None:
    rows = [f'{i},"line\nbreak {i}",{"x" * (i % 50)}' for i in range(3000)]
    put(s3, "d/large.csv.gz", gzip.compress(("a,b,c\n" + "\n".join(rows)).encode()))
    put(s3, "d/large.csv", "a,b,c\n" + "\n".join(rows))
    for key in ("d/large.csv", "d/large.csv.gz"):
        cursor = reopenable(reader("CSV"), {"Bucket": BUCKET, "Key": key}, s3)
        items = drain(cursor, 400)
        assert len(items) == 3000
        assert items[2999] == {"a": "2999", "b": "line\nbreak 2999", "c": "x" * (2999 % 50)}


def test_max_items_holds_across_resumes(s3: Any) -> None:
    put(s3, "d/many.jsonl", "".join(f"{i}\n" for i in range(50)))
    params = {"Bucket": BUCKET, "Key": "d/many.jsonl"}
    cursor = reopenable(reader("JSONL"), params, s3, max_items=12)
    assert drain(cursor, 5) == list(range(12))
    literal = reader("JSONL", MaxItems=3)
    assert open_reader(literal, params, client=s3).next_page(10)[0] == [0, 1, 2]


def test_s3_inventory_manifest(s3: Any) -> None:
    part1 = (
        '"src","csvDataset/","0","2022-11-16T00:27:19.000Z"\n'
        '"src","csvDataset/titles.csv","3399671","2022-11-16T00:29:32.000Z"\n'
    )
    part2 = '"src","imageDataset/n02085620_10074.jpg","27034","2022-11-15T20:02:16.000Z"\n'
    put(s3, "inv/data/1.csv.gz", gzip.compress(part1.encode()))
    put(s3, "inv/data/2.csv.gz", gzip.compress(part2.encode()))
    manifest = {
        "sourceBucket": "src",
        "destinationBucket": f"arn:aws:s3:::{BUCKET}",
        "version": "2016-11-30",
        "creationTimestamp": "1668560400000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [
            {"key": "inv/data/1.csv.gz", "size": 1, "MD5checksum": "x"},
            {"key": "inv/data/2.csv.gz", "size": 1, "MD5checksum": "y"},
        ],
    }
    put(s3, "inv/manifest.json", json.dumps(manifest))
    params = {"Bucket": BUCKET, "Key": "inv/manifest.json"}
    cursor = reopenable(reader("MANIFEST"), params, s3)
    items = drain(cursor, 2)
    assert items[1] == {
        "LastModifiedDate": "2022-11-16T00:29:32.000Z",
        "Bucket": "src",
        "Size": "3399671",
        "Key": "csvDataset/titles.csv",
    }
    assert [i["Key"] for i in items] == [
        "csvDataset/",
        "csvDataset/titles.csv",
        "imageDataset/n02085620_10074.jpg",
    ]
    inventory = {"Resource": GET, "ReaderConfig": {"ManifestType": "S3_INVENTORY"}}
    assert open_reader(inventory, params, client=s3).next_page(10)[0] == items


def test_list_objects_v2_past_one_thousand_keys(s3: Any) -> None:
    s3.create_bucket(Bucket="listing")
    for i in range(1205):
        s3.put_object(Bucket="listing", Key=f"p/{i:05d}", Body=b"x" * (i % 3))
    s3.put_object(Bucket="listing", Key="other/skip", Body=b"")
    params = {"Bucket": "listing", "Prefix": "p/"}
    cursor = reopenable({"Resource": LIST}, params, s3)
    first, state = cursor.next_page(1100)
    assert len(first) == 1100 and state == {"t": "list", "a": "p/01099", "n": 1100, "done": False}
    items = first + drain(cursor._reopen(state), 1000)
    assert [i["Key"] for i in items] == [f"p/{i:05d}" for i in range(1205)]
    item = items[4]
    assert set(item) == {"Etag", "Key", "LastModified", "Size", "StorageClass"}
    assert item["Etag"].startswith('"') and item["Size"] == 1 and item["StorageClass"] == "STANDARD"
    assert isinstance(item["LastModified"], int) and item["LastModified"] > 1_600_000_000
    limited = open_reader({"Resource": LIST, "ReaderConfig": {"MaxItems": 3}}, params, client=s3)
    assert len(limited.next_page(100)[0]) == 3 and limited.done


def test_missing_objects_and_buckets_are_item_reader_failures(s3: Any) -> None:
    with pytest.raises(ItemReaderFailed, match="404|NoSuchKey|Not Found"):
        open_reader(reader("JSONL"), {"Bucket": BUCKET, "Key": "nope"}, client=s3)
    with pytest.raises(ItemReaderFailed, match="NoSuchBucket"):
        open_reader({"Resource": LIST}, {"Bucket": "no-such-bucket"}, client=s3).next_page(1)
    with pytest.raises(ItemReaderFailed, match="InputType"):
        open_reader(reader("PARQUET"), {"Bucket": BUCKET, "Key": "k"}, client=s3)


def test_read_batch_fills_batches_from_a_cursor_and_resumes(s3: Any) -> None:
    data = [{"i": i, "pad": "p" * (i % 20)} for i in range(230)]
    put(s3, "d/batch.jsonl", "".join(json.dumps(d) + "\n" for d in data))
    params = {"Bucket": BUCKET, "Key": "d/batch.jsonl"}
    cursor = open_reader(reader("JSONL"), params, client=s3)
    seen: list[Any] = []
    while True:
        batch, state = read_batch(cursor, 50, 900, {"job": "x"})
        if batch is None:
            break
        assert batch["BatchInput"] == {"job": "x"} and len(batch["Items"]) <= 50
        assert len(json.dumps(batch, separators=(",", ":"))) <= 900
        seen.extend(batch["Items"])
        cursor = open_reader(
            reader("JSONL"), params, client=s3, state=json.loads(json.dumps(state))
        )
    assert seen == data


def _one_at_a_time(params: dict, client: Any, *args: Any) -> list[dict]:
    """The batches ``read_batch`` makes, one read after another (the reference)."""
    cursor = open_reader(reader("JSONL"), params, client=client)
    out = []
    while True:
        batch, _ = read_batch(cursor, *args)
        if batch is None:
            return out
        out.append(batch)


class _CountingGets:
    """An S3 client whose get_object calls are counted."""

    def __init__(self, client: Any) -> None:
        self._client, self.gets = client, 0

    def get_object(self, **kw: Any) -> Any:
        self.gets += 1
        return self._client.get_object(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_read_batches_cuts_one_page_into_the_batches_read_batch_makes(s3: Any) -> None:
    data = [{"i": i, "pad": "p" * (i % 37)} for i in range(2345)]
    put(s3, "d/page.jsonl", "".join(json.dumps(d) + "\n" for d in data))
    params = {"Bucket": BUCKET, "Key": "d/page.jsonl"}
    for args in ((100, None, None), (50, 1500, {"job": "x"}), (None, 4000, None)):
        expected = _one_at_a_time(params, s3, *args)
        client = _CountingGets(s3)
        cursor = open_reader(reader("JSONL"), params, client=client)
        got = read_batches(cursor, 10_000, *args)
        # One page (one GET) holds them all here: every item in order, the same batches.
        assert client.gets == 1 and cursor.done
        assert [batch for _, batch in got] == expected
        firsts = [first for first, _ in got]
        sizes = [len(batch["Items"]) for _, batch in got]
        assert firsts == [sum(sizes[:k]) for k in range(len(sizes))]
        assert [item for _, batch in got for item in batch["Items"]] == data
        assert read_batches(cursor, 5, *args) == []


@pytest.mark.parametrize("count,page", [(3, 10_000), (7, 450), (1, 100), (40, 1000)])
def test_read_batches_resumed_mid_page_neither_skips_nor_repeats(
    s3: Any, count: int, page: int
) -> None:
    """Batches taken a few at a time, each read from a cursor reopened from the last
    state's JSON: a page holds more items than the batches taken (the cursor stops mid-
    page) or cuts a batch's window short (left to the next read)."""
    data = [{"i": i, "pad": "q" * (i % 23)} for i in range(1777)]
    put(s3, "d/resume.jsonl", "".join(json.dumps(d) + "\n" for d in data))
    params = {"Bucket": BUCKET, "Key": "d/resume.jsonl"}
    for args in ((100, None, None), (60, 1200, {"b": 1}), (None, 700, None)):
        expected = _one_at_a_time(params, s3, *args)
        got: list[tuple[int, dict]] = []
        state: dict | None = None
        while True:
            cursor = open_reader(reader("JSONL"), params, client=s3, state=state)
            taken = read_batches(cursor, count, *args, max_page_items=page)
            assert len(taken) <= count
            if not taken:
                assert cursor.done
                break
            if len(taken) < count:
                # Fewer than asked only where the page ends: the cursor knows if items are left.
                assert cursor.done or page < count * (args[0] or 1000)
            got.extend(taken)
            state = json.loads(json.dumps(cursor.state))
        assert [batch for _, batch in got] == expected
        assert [first for first, _ in got] == [
            sum(len(b["Items"]) for b in expected[:k]) for k in range(len(expected))
        ]


def test_a_page_of_large_items_spans_a_bounded_number_of_bytes(s3: Any) -> None:
    """A page ends once it spans ``max_page_bytes`` of the object (after one batch's
    window at least), so large items are read a few batches at a time; what the batches
    hold does not change."""
    data = [{"i": i, "blob": "x" * (500 + 37 * (i % 50))} for i in range(600)]
    put(s3, "d/large.jsonl", "".join(json.dumps(d) + "\n" for d in data))
    params = {"Bucket": BUCKET, "Key": "d/large.jsonl"}
    for args in ((10, None, None), (25, 9000, None)):
        expected = _one_at_a_time(params, s3, *args)
        client = _CountingGets(s3)
        got: list[tuple[int, dict]] = []
        state: dict | None = None
        while True:
            cursor = open_reader(reader("JSONL"), params, client=client, state=state)
            before = int(cursor.state["o"])
            taken = read_batches(cursor, 100, *args, max_page_bytes=20_000)
            if not taken:
                break
            # One window (args[0] items of at most ~2.4 KB) over the budget at most.
            assert int(cursor.state["o"]) - before < 20_000 + args[0] * 2500
            got.extend(taken)
            state = json.loads(json.dumps(cursor.state))
        assert [batch for _, batch in got] == expected
        assert client.gets > 10  # many small pages, not one of every item
        cursor = open_reader(reader("JSONL"), params, client=s3)
        items, _ = cursor.next_page(600, max_bytes=5000, min_items=7)
        assert 7 <= len(items) < 600 and items == data[: len(items)]


def test_result_writer_layout(s3: Any) -> None:
    arn = (
        "arn:aws:states:us-east-1:123456789012:mapRun:csvProcess/Map:"
        "ad9b5f27-090b-3ac6-9beb-243cd77144a7"
    )
    writer = ResultWriter(BUCKET, "csvProcessJobs", arn, client=s3, max_file_bytes=2000)
    start = datetime(2025, 2, 4, 1, 49, 50, 99000, tzinfo=UTC)
    expected: dict[str, list[dict]] = {"SUCCEEDED": [], "FAILED": [], "PENDING": []}
    for i in range(12):
        status = ["SUCCEEDED", "SUCCEEDED", "FAILED", "TIMED_OUT"][i % 4]
        entry = result_entry(
            status=status,
            input={"item": i},
            output=[{"customer_id": str(i)}] if status == "SUCCEEDED" else None,
            error="Boom" if status != "SUCCEEDED" else None,
            cause="it broke" if status != "SUCCEEDED" else None,
            execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:csvProcess/Map:{i}",
            name=str(i),
            state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:csvProcess/Map",
            start_date=start,
            stop_date=start.timestamp() + 0.064,
        )
        writer.add(entry)
        expected["SUCCEEDED" if status == "SUCCEEDED" else "FAILED"].append(entry)
    pending = result_entry(status="PENDING", input={"item": 99})
    writer.add(pending)
    expected["PENDING"].append(pending)
    output = writer.finish()
    prefix = "csvProcessJobs/ad9b5f27-090b-3ac6-9beb-243cd77144a7/"
    assert output == {
        "MapRunArn": arn,
        "ResultWriterDetails": {"Bucket": BUCKET, "Key": prefix + "manifest.json"},
    }
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix + "manifest.json")["Body"].read())
    assert manifest["DestinationBucket"] == BUCKET and manifest["MapRunArn"] == arn
    assert set(manifest["ResultFiles"]) == {"FAILED", "PENDING", "SUCCEEDED"}
    succeeded_keys = [f["Key"] for f in manifest["ResultFiles"]["SUCCEEDED"]]
    assert len(succeeded_keys) > 1  # split at max_file_bytes
    assert succeeded_keys == [f"{prefix}SUCCEEDED_{n}.json" for n in range(len(succeeded_keys))]
    for group, files in manifest["ResultFiles"].items():
        read: list[dict] = []
        for f in files:
            body = s3.get_object(Bucket=BUCKET, Key=f["Key"])["Body"].read()
            assert len(body) == f["Size"] <= 2000
            read.extend(json.loads(body))
        assert read == expected[group]
    first = expected["SUCCEEDED"][0]
    assert first == {
        "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:csvProcess/Map:0",
        "Input": '{"item":0}',
        "InputDetails": {"Included": True},
        "Name": "0",
        "Output": '[{"customer_id":"0"}]',
        "OutputDetails": {"Included": True},
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
        "StartDate": "2025-02-04T01:49:50.099Z",
        "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:csvProcess/Map",
        "Status": "SUCCEEDED",
        "StopDate": "2025-02-04T01:49:50.163Z",
    }
    failed = expected["FAILED"][1]
    assert failed["Status"] == "TIMED_OUT" and failed["Error"] == "Boom" and "Output" not in failed


def test_result_writer_streams_large_files_in_parts(s3: Any) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:mapRun:m/Map:run-2"
    writer = ResultWriter(BUCKET, None, arn, client=s3, part_bytes=5 * 1024 * 1024)
    payload = "v" * 2000
    for i in range(6000):  # ~13 MB: three parts
        writer.add(result_entry(status="SUCCEEDED", input=i, output=payload, name=str(i)))
    output = writer.finish()
    assert output["ResultWriterDetails"]["Key"] == "run-2/manifest.json"
    body = s3.get_object(Bucket=BUCKET, Key="run-2/SUCCEEDED_0.json")["Body"].read()
    entries = json.loads(body)
    assert len(entries) == 6000 and entries[5999]["Input"] == "5999"


def test_result_writer_failure_is_states_result_writer_failed(s3: Any) -> None:
    writer = ResultWriter("no-such-bucket", "p", "arn:aws:states:::mapRun:m/M:x", client=s3)
    writer.add(result_entry(status="SUCCEEDED", input=1, output=1))
    with pytest.raises(ResultWriterFailed) as failure:
        writer.finish()
    assert failure.value.error == "States.ResultWriterFailed"


def test_the_default_client_follows_the_endpoint_environment(s3: Any) -> None:
    # s3_client() was built from AWS_ENDPOINT_URL_S3 (set by local_s3): it reaches moto
    assert BUCKET in [b["Name"] for b in s3_client().list_buckets()["Buckets"]]
    cursor = open_reader({"Resource": LIST}, {"Bucket": BUCKET, "Prefix": "d/ratings"})
    assert cursor.next_page(5)[0][0]["Key"] == "d/ratings.csv"


def test_without_boto3_a_definition_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws, "aws_available", lambda: False)
    issues = requires_aws("$.States.M.ItemReader")
    assert len(issues) == 1 and "pip install 'orchestrator[aws]'" in issues[0].message
    with pytest.raises(MissingOptionalDependency) as failure:
        s3_client("$.States.M.ItemReader")
    assert isinstance(failure.value, DefinitionError)
    assert failure.value.issues[0].path == "$.States.M.ItemReader"
