"""``azure-focus-export``: FOCUS cost exports that Cost Management writes to blob storage.

Each export run writes partitions and a ``manifest.json`` listing them with row counts. We
pick the newest run whose date range starts in the period, read exactly the blobs it lists
(streamed batch by batch), and check the rows read against the manifest's counts, so a
partition lost in transit is an error, not a smaller bill. The run id is the source
version: a re-run (restatement) is a new version.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import pyarrow as pa

from chargeback_azure.http import (
    CONNECTION_TIMEOUT,
    READ_TIMEOUT,
    SDK_LOGGERS,
    call,
    default_credential,
)
from chargeback_engine.plugin import (
    DEADLINE_SCHEMA,
    CollectedSource,
    InputError,
    Period,
    RetryPolicy,
    empty_cost_table,
    focus_mapper,
    get_logger,
    iter_file_batches,
    redact_sdk_logs,
    table_details,
)

log = get_logger(__name__)

NAME = "azure-focus-export"

CONFIG_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "A FOCUS cost export written to Azure blob storage by Cost Management.",
    "required": ["account_url", "container", "path"],
    "additionalProperties": False,
    "properties": {
        "deadline_seconds": DEADLINE_SCHEMA,
        "account_url": {
            "type": "string",
            "pattern": "^https://[^?]+$",
            "description": "https://<account>.blob.core.windows.net (no SAS: credentials come from Entra ID)",
        },
        "container": {"type": "string", "minLength": 3},
        "path": {"type": "string", "minLength": 1, "description": "The export's root folder path and name."},
    },
}


def default_container(account_url: str, container: str) -> Any:
    from azure.storage.blob import ContainerClient

    return ContainerClient(
        account_url,
        container,
        credential=default_credential(),
        retry_total=0,
        connection_timeout=CONNECTION_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )


class FocusExportCollector:
    name = NAME
    config_schema = CONFIG_SCHEMA

    def __init__(
        self, container_factory: Callable[[str, str], Any] = default_container, retry: RetryPolicy | None = None
    ):
        self._container_factory = container_factory
        self._retry = retry or RetryPolicy()

    def collect(self, config: Mapping[str, Any], period: Period) -> Iterable[CollectedSource]:
        source_id = config.get("id", NAME)
        retry = self._retry.begin(config.get("deadline_seconds"))
        redact_sdk_logs(SDK_LOGGERS)
        container = self._container_factory(config["account_url"], config["container"])
        where = f"{config['account_url'].rstrip('/')}/{config['container']}"
        manifest_name, manifest = self._manifest(container, config["path"].strip("/"), period, where, retry)
        mapper = focus_mapper(source_id)
        parts: list[pa.Table] = []
        for blob in manifest.get("blobs", []):
            name = blob["blobName"]
            read = 0
            with self._download(container, name, retry) as stream:
                for batch in iter_file_batches(stream, name=name, columns=mapper.columns):
                    parts.append(mapper.map(batch, where=f"{where}/{name}", first_row=read + 1))
                    read += batch.num_rows
            if "dataRowCount" in blob and read != blob["dataRowCount"]:
                raise InputError(f"{where}/{name}: read {read} rows, the manifest says {blob['dataRowCount']}")
        table = pa.concat_tables(parts) if parts else empty_cost_table()
        run = manifest.get("runInfo", {})
        details = {
            **table_details(table),
            "manifest": f"{where}/{manifest_name}",
            "files": len(manifest.get("blobs", [])),
            "run_id": run.get("runId"),
            "rounding": mapper.rounding.as_details(),
        }
        yield CollectedSource(source_id, table, f"run:{run.get('runId')}", details)

    def _manifest(
        self, container: Any, path: str, period: Period, where: str, retry: RetryPolicy
    ) -> tuple[str, Mapping[str, Any]]:
        """The newest run (by submittedTime) whose date range starts in ``period``."""
        names = call(
            retry,
            lambda: [
                b.name for b in container.list_blobs(name_starts_with=f"{path}/") if b.name.endswith("manifest.json")
            ],
            f"{NAME}: list blobs",
        )
        runs: list[tuple[str, str, Mapping[str, Any]]] = []
        for name in names:
            with self._download(container, name, retry) as stream:
                try:
                    manifest = json.load(stream)
                except ValueError as exc:
                    raise InputError(f"{where}/{name}: not a valid manifest: {exc}") from exc
            run = manifest.get("runInfo", {})
            if str(run.get("startDate", ""))[:7] == str(period):
                runs.append((str(run.get("submittedTime", "")), name, manifest))
        if not runs:
            raise InputError(f"{where}/{path}: no export run with a manifest.json for period {period}")
        _, name, manifest = max(runs, key=lambda r: (r[0], r[1]))
        if "runId" not in manifest.get("runInfo", {}):
            raise InputError(f"{where}/{name}: the manifest has no runInfo.runId")
        return name, manifest

    def _download(self, container: Any, name: str, retry: RetryPolicy) -> IO[bytes]:
        """A spooled local copy: Parquet needs to seek, and a retried download must start clean."""

        def download() -> IO[bytes]:
            spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
            container.download_blob(name).readinto(spool)
            spool.seek(0)
            return spool

        return call(retry, download, f"{NAME}: download {name}")
