"""``ResultWriter`` to S3 in Step Functions' layout.

For a Map Run ``arn:...:mapRun:<machine>/<label>:<MapRunId>`` and ``Parameters``
``{"Bucket": B, "Prefix": P}``, Step Functions writes under ``P/<MapRunId>/``:

* ``SUCCEEDED_n.json``: the succeeded children; ``FAILED_n.json``: the failed, timed out
  and aborted ones; ``PENDING_n.json``: those never started because the Map Run failed or
  was aborted. Each is a JSON array of entries (:func:`result_entry`) whose ``Input`` and
  ``Output`` are JSON *strings*; ``n`` counts from 0, a new file starting when one would
  pass 5 GB. A status without children has no file.
* ``manifest.json``: ``{"DestinationBucket": B, "MapRunArn": ...,
  "ResultFiles": {"FAILED": [{"Key", "Size"}...], "PENDING": [...], "SUCCEEDED": [...]}}``.

and the Map state's output is ``{"MapRunArn": ..., "ResultWriterDetails": {"Bucket": B,
"Key": "P/<MapRunId>/manifest.json"}}``.

:class:`ResultWriter` takes entries one at a time and streams each file to S3 (a multipart
upload once a file passes one part), so a run of any size never holds its results in
memory. It is not resumable: a process that dies mid-write leaves no manifest (and an
incomplete multipart upload that S3 lifecycle rules or :meth:`ResultWriter.abort` clear);
the engine writes again from its stored child results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.engine.items.aws import error_code, is_aws_error, s3_client
from orchestrator.errors import ResultWriterFailed

PUT_OBJECT = "arn:aws:states:::s3:putObject"

#: Step Functions starts a new results file when one would pass 5 GB.
MAX_FILE_BYTES = 5 * 1024**3
#: Size of an uploaded part (S3 wants at least 5 MiB for every part but the last).
PART_BYTES = 8 * 1024 * 1024

#: The file each child status goes to.
FILE_OF_STATUS = {
    "SUCCEEDED": "SUCCEEDED",
    "FAILED": "FAILED",
    "TIMED_OUT": "FAILED",
    "ABORTED": "FAILED",
    "PENDING": "PENDING",
}
GROUPS = ("FAILED", "PENDING", "SUCCEEDED")


def timestamp(value: datetime | float) -> str:
    """A date as Step Functions writes it in results files: ``2025-02-04T01:49:50.099Z``."""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _json_string(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def result_entry(
    *,
    status: str,
    input: Any,
    execution_arn: str | None = None,
    name: str | None = None,
    state_machine_arn: str | None = None,
    output: Any = None,
    error: str | None = None,
    cause: str | None = None,
    start_date: datetime | float | None = None,
    stop_date: datetime | float | None = None,
    redrive_count: int = 0,
    redrive_status: str | None = None,
    redrive_status_reason: str | None = None,
) -> dict[str, Any]:
    """One child's entry in a results file, with Step Functions' fields.

    ``input``/``output`` are the child's values (written as JSON strings). A succeeded child
    is ``NOT_REDRIVABLE`` ("Execution is SUCCEEDED and cannot be redriven"); a failed one
    ``REDRIVABLE_BY_MAP_RUN`` unless told otherwise. Fields without a value (a pending
    child has no ARN or dates) are left out.
    """
    if status not in FILE_OF_STATUS:
        raise ValueError(f"unknown child status {status!r}")
    if redrive_status is None and status != "PENDING":
        redrive_status = "NOT_REDRIVABLE" if status == "SUCCEEDED" else "REDRIVABLE_BY_MAP_RUN"
    if redrive_status_reason is None and status == "SUCCEEDED":
        redrive_status_reason = "Execution is SUCCEEDED and cannot be redriven"
    entry: dict[str, Any] = {
        "Cause": cause,
        "Error": error,
        "ExecutionArn": execution_arn,
        "Input": _json_string(input),
        "InputDetails": {"Included": True},
        "Name": name,
        "RedriveCount": redrive_count if status != "PENDING" else None,
        "RedriveStatus": redrive_status,
        "RedriveStatusReason": redrive_status_reason,
        "StartDate": timestamp(start_date) if start_date is not None else None,
        "StateMachineArn": state_machine_arn,
        "Status": status,
        "StopDate": timestamp(stop_date) if stop_date is not None else None,
    }
    if status == "SUCCEEDED":
        entry["Output"] = _json_string(output)
        entry["OutputDetails"] = {"Included": True}
    return {key: entry[key] for key in sorted(entry) if entry[key] is not None}


def map_run_id(map_run_arn: str) -> str:
    """The id at the end of a Map Run ARN (``...:mapRun:machine/Label:<id>``)."""
    return map_run_arn.rsplit(":", 1)[-1]


def results_prefix(prefix: str | None, map_run_arn: str) -> str:
    """``<Prefix>/<MapRunId>/`` (just ``<MapRunId>/`` without a prefix)."""
    prefix = prefix or ""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return f"{prefix}{map_run_id(map_run_arn)}/"


class _ResultsFile:
    """One ``<GROUP>_<n>.json`` being written: a JSON array, streamed in parts."""

    def __init__(self, writer: ResultWriter, key: str) -> None:
        self.writer = writer
        self.key = key
        self.size = 0
        self.count = 0
        self._buffer = bytearray(b"[")
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def fits(self, data: bytes) -> bool:
        return self.count == 0 or self.size + 1 + len(self._buffer) + len(data) + 1 <= (
            self.writer.max_file_bytes
        )

    def append(self, data: bytes) -> None:
        if self.count:
            self._buffer += b","
        self._buffer += data
        self.count += 1
        if len(self._buffer) >= self.writer.part_bytes:
            self._upload_part()

    def _upload_part(self) -> None:
        client = self.writer.client
        if self._upload_id is None:
            upload = client.create_multipart_upload(
                Bucket=self.writer.bucket, Key=self.key, ContentType="application/json"
            )
            self._upload_id = upload["UploadId"]
        number = len(self._parts) + 1
        answer = client.upload_part(
            Bucket=self.writer.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
        self.size += len(self._buffer)
        self._buffer = bytearray()

    def close(self) -> dict[str, Any]:
        self._buffer += b"]"
        client = self.writer.client
        if self._upload_id is None:
            client.put_object(
                Bucket=self.writer.bucket,
                Key=self.key,
                Body=bytes(self._buffer),
                ContentType="application/json",
            )
            self.size += len(self._buffer)
        else:
            self._upload_part()
            client.complete_multipart_upload(
                Bucket=self.writer.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._upload_id = None
        return {"Key": self.key, "Size": self.size}

    def abort(self) -> None:
        if self._upload_id is not None:
            self.writer.client.abort_multipart_upload(
                Bucket=self.writer.bucket, Key=self.key, UploadId=self._upload_id
            )
            self._upload_id = None


class ResultWriter:
    """The results of one Map Run, written to S3 as they are added; see the module doc.

    ``writer.add(result_entry(...))`` for each child (any order; entries go to the file of
    their ``Status``), then ``writer.finish()`` closes the files, writes ``manifest.json``
    and returns the Map state's output. Failures are ``States.ResultWriterFailed``.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str | None,
        map_run_arn: str,
        *,
        client: Any = None,
        max_file_bytes: int = MAX_FILE_BYTES,
        part_bytes: int = PART_BYTES,
    ) -> None:
        if not bucket:
            raise ResultWriterFailed("ResultWriter Parameters need a Bucket")
        self.bucket = bucket
        self.map_run_arn = map_run_arn
        self.prefix = results_prefix(prefix, map_run_arn)
        self.client = client if client is not None else s3_client("$.ResultWriter")
        self.max_file_bytes = max_file_bytes
        self.part_bytes = part_bytes
        self._open: dict[str, _ResultsFile] = {}
        self._written: dict[str, list[dict[str, Any]]] = {group: [] for group in GROUPS}
        self._next_index: dict[str, int] = {group: 0 for group in GROUPS}
        self._finished = False

    @classmethod
    def from_parameters(
        cls, parameters: Mapping[str, Any], map_run_arn: str, **options: Any
    ) -> ResultWriter:
        """A writer for the state's evaluated ``ResultWriter.Parameters`` (``Bucket``,
        ``Prefix``)."""
        return cls(
            str(parameters.get("Bucket") or ""), parameters.get("Prefix"), map_run_arn, **options
        )

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}manifest.json"

    def add(self, entry: Mapping[str, Any]) -> None:
        """Write one child's entry (see :func:`result_entry`)."""
        if self._finished:
            raise ValueError("the results were already finished")
        group = FILE_OF_STATUS.get(str(entry.get("Status")))
        if group is None:
            raise ValueError(f"an entry needs a Status among {', '.join(FILE_OF_STATUS)}")
        data = _json_string(dict(entry)).encode("utf-8")
        with self._failures():
            current = self._open.get(group)
            if current is not None and not current.fits(data):
                self._written[group].append(current.close())
                current = None
            if current is None:
                index = self._next_index[group]
                self._next_index[group] = index + 1
                current = _ResultsFile(self, f"{self.prefix}{group}_{index}.json")
                self._open[group] = current
            current.append(data)

    def finish(self) -> dict[str, Any]:
        """Close every file, write ``manifest.json``; the Map state's output."""
        with self._failures():
            for group in GROUPS:
                current = self._open.pop(group, None)
                if current is not None:
                    self._written[group].append(current.close())
            manifest = {
                "DestinationBucket": self.bucket,
                "MapRunArn": self.map_run_arn,
                "ResultFiles": {group: self._written[group] for group in GROUPS},
            }
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.manifest_key,
                Body=json.dumps(manifest, indent=2).encode("utf-8"),
                ContentType="application/json",
            )
        self._finished = True
        return {
            "MapRunArn": self.map_run_arn,
            "ResultWriterDetails": {"Bucket": self.bucket, "Key": self.manifest_key},
        }

    def abort(self) -> None:
        """Drop the uploads in progress (files already closed stay)."""
        for current in self._open.values():
            try:
                current.abort()
            except Exception as exc:
                if not is_aws_error(exc):
                    raise
        self._open.clear()

    def _failures(self) -> _Failures:
        return _Failures(self)


class _Failures:
    """Turns S3 errors into ``States.ResultWriterFailed``."""

    def __init__(self, writer: ResultWriter) -> None:
        self.writer = writer

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and is_aws_error(exc):
            where = f"s3://{self.writer.bucket}/{self.writer.prefix}"
            raise ResultWriterFailed(
                f"cannot write results to {where}: {error_code(exc)}: {exc}"
            ) from exc
