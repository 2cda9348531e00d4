"""ItemBatcher and CSV rules of the Distributed Map's S3 items (no server, no boto3)."""

from __future__ import annotations

import json

import pytest

from orchestrator.engine.items import batch_size, batches, csvrows, fit, validate_item_reader
from orchestrator.errors import StatesRuntimeError


def test_batches_by_count_as_aws_documents_1130_items_in_12_batches() -> None:
    out = batches(range(1130), max_items_per_batch=100)
    assert [len(b["Items"]) for b in out] == [100] * 11 + [30]
    assert out[0] == {"Items": list(range(100))}
    assert [i for b in out for i in b["Items"]] == list(range(1130))


def test_batch_input_is_nested_under_its_key_and_counts_towards_the_bytes() -> None:
    out = batches(["a", "b"], max_items_per_batch=5, batch_input={"factCheck": "December 2022"})
    assert out == [{"BatchInput": {"factCheck": "December 2022"}, "Items": ["a", "b"]}]
    item = "x" * 10  # "xxxxxxxxxx" is 12 bytes of JSON
    plain = batches([item] * 10, max_input_bytes_per_batch=len('{"Items":[]}') + 12 * 3 + 2)
    assert [len(b["Items"]) for b in plain] == [3, 3, 3, 1]
    padded = batches(
        [item] * 10,
        max_input_bytes_per_batch=len('{"Items":[]}') + 12 * 3 + 2,
        batch_input={"k": 1},
    )
    assert all(len(b["Items"]) < 3 for b in padded)  # BatchInput takes room


def test_every_batch_fits_its_byte_cap_and_the_count_cap() -> None:
    items = [{"id": i, "pad": "y" * (i % 37)} for i in range(500)]
    out = batches(items, max_items_per_batch=40, max_input_bytes_per_batch=1500, batch_input=[1])
    assert all(batch_size(b) <= 1500 and len(b["Items"]) <= 40 for b in out)
    assert [i for b in out for i in b["Items"]] == items
    # each batch is as full as it can be: the next item would not have fitted
    for b, nxt in zip(out, out[1:], strict=False):
        grown = {"BatchInput": [1], "Items": [*b["Items"], nxt["Items"][0]]}
        assert len(b["Items"]) == 40 or batch_size(grown) > 1500


def test_without_a_byte_cap_a_batch_holds_at_most_256_kib() -> None:
    out = batches(["z" * 1000] * 600, max_items_per_batch=None)
    assert all(batch_size(b) <= 256 * 1024 for b in out)
    assert len(out) == 3


def test_fit_counts_the_next_batch_and_an_oversized_item_is_an_error() -> None:
    assert fit(["a", "b", "c"], 2) == 2
    assert fit([], 2) == 0
    with pytest.raises(StatesRuntimeError, match="does not fit"):
        fit(["q" * 100], None, 50)
    with pytest.raises(StatesRuntimeError, match="does not fit"):
        batches(["q" * 100], None, 50)
    with pytest.raises(StatesRuntimeError, match="positive"):
        batches([1], 0)


def test_csv_follows_step_functions_rules() -> None:
    text = (
        "\ufeffname,quote,path\n"
        'a,"has, comma and\nnewline",x\n'
        'b,"say ""hi""",C:\\\\dir\n'
        "c,esc\\,aped,\\q\n"
        "\n"
        "d\n"
        "e,1,2,3,4\n"
    )
    assert csvrows.parse(text) == [
        {"name": "a", "quote": "has, comma and\nnewline", "path": "x"},
        {"name": "b", "quote": 'say "hi"', "path": "C:\\dir"},
        {"name": "c", "quote": "esc,aped", "path": "q"},
        {"name": "d", "quote": "", "path": ""},
        {"name": "e", "quote": "1", "path": "2"},
    ]
    assert csvrows.parse("1|2\n", header=["x", "y"], delimiter="|") == [{"x": "1", "y": "2"}]
    assert all(isinstance(v, str) for row in csvrows.parse("n\n1\n") for v in row.values())


def test_csv_delimiters_are_the_documented_ones() -> None:
    assert [csvrows.delimiter_of(n) for n in ("COMMA", "PIPE", "SEMICOLON", "SPACE", "TAB")] == [
        ",",
        "|",
        ";",
        " ",
        "\t",
    ]
    with pytest.raises(ValueError, match="CSVDelimiter"):
        csvrows.delimiter_of("COLON")


def test_item_reader_definitions_are_checked() -> None:
    ok = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "GIVEN", "CSVHeaders": ["a"]},
    }
    assert validate_item_reader(ok) == []
    bad = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "XML", "CSVHeaderLocation": "GIVEN", "MaxItems": -1},
    }
    paths = sorted(issue.path for issue in validate_item_reader(bad))
    assert paths == [
        "$.ItemReader.ReaderConfig.CSVHeaders",
        "$.ItemReader.ReaderConfig.InputType",
        "$.ItemReader.ReaderConfig.MaxItems",
    ]
    listing = {"Resource": "arn:aws:states:::s3:listObjectsV2"}
    assert validate_item_reader(listing) == []
    assert json.dumps([str(i) for i in validate_item_reader({"Resource": "x"})])


def test_the_module_imports_without_boto3_and_says_which_extra_to_install() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from orchestrator.engine.items import requires_aws, s3_client\n"
        "from orchestrator.errors import DefinitionError\n"
        "print(requires_aws('$.States.M.ItemReader')[0])\n"
        "try:\n    s3_client()\nexcept DefinitionError as e:\n    print(type(e).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'orchestrator[aws]'" in done.stdout
    assert "$.States.M.ItemReader" in done.stdout
    assert done.stdout.strip().endswith("MissingOptionalDependency")


def test_fit_of_a_batch_that_fits_whole_is_the_item_by_item_count() -> None:
    """fit's one encoding of a whole batch counts what adding up its items does: a cap
    met exactly, one byte short of it, non-ASCII text (UTF-8 bytes) and a BatchInput."""
    from orchestrator.engine.items.batcher import batch_input_of

    items = [{"k": i, "t": "é" * (i % 7), "n": [1.5, None, True]} for i in range(40)]
    for batch_input in (None, {"job": "ü", "n": 1}):
        for count in (2, 7, 40):
            exact = batch_size(batch_input_of(items[:count], batch_input))
            assert fit(items, count, exact, batch_input) == count
            assert fit(items[:count], None, exact, batch_input) == count
            assert fit(items[:count], None, exact - 1, batch_input) == count - 1
        one = batch_size(batch_input_of(items[:1], batch_input))
        assert fit(items, None, one, batch_input) == 1
        with pytest.raises(StatesRuntimeError):
            fit(items, None, one - 1, batch_input)
