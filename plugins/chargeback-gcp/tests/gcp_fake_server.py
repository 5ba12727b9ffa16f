"""A local HTTP server answering the BigQuery and Cloud Billing REST APIs from recorded responses.

The Google client libraries run unchanged against it (``client_options.api_endpoint``,
``AnonymousCredentials``); the responses have the documented JSON shapes: ``jobs.query``
and ``jobs.getQueryResults`` with ``schema``/``rows``/``pageToken``, ``billingAccounts.list``,
``billingAccounts.projects.list`` and ``services.skus.list``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlparse

from chargeback_gcp.bigquery_export import _COLUMNS

_TYPES = {
    "billed_cost": "NUMERIC",
    "effective_cost": "NUMERIC",
    "list_cost": "NUMERIC",
    "pricing_quantity": "NUMERIC",
    "charge_start": "TIMESTAMP",
    "charge_end": "TIMESTAMP",
    "export_time": "TIMESTAMP",
}
SCHEMA = {"fields": [{"name": c, "type": _TYPES.get(c, "STRING"), "mode": "NULLABLE"} for c in _COLUMNS]}


def cell(value: Any) -> dict[str, Any]:
    if value is None:
        return {"v": None}
    if isinstance(value, datetime):
        return {"v": str(int(value.timestamp() * 1_000_000))}
    return {"v": str(value)}


def result_page(
    rows: list[dict[str, Any]], page_token: str | None, job_id: str = "job_Xq3", first: bool = True
) -> dict[str, Any]:
    """One page of query results, as jobs.query (first) or jobs.getQueryResults returns it."""
    page: dict[str, Any] = {
        "kind": "bigquery#queryResponse" if first else "bigquery#getQueryResultsResponse",
        "schema": SCHEMA,
        "jobReference": {"projectId": "acme-billing", "jobId": job_id, "location": "US"},
        "totalRows": "0",
        "rows": [{"f": [cell(r.get(c)) for c in _COLUMNS]} for r in rows],
        "totalBytesProcessed": "1048576",
        "jobComplete": True,
        "cacheHit": False,
    }
    if page_token:
        page["pageToken"] = page_token
    return page


def job_resource(job_id: str = "job_Xq3") -> dict[str, Any]:
    """jobs.get for a finished query job, as the client reads it before paging through results."""
    return {
        "kind": "bigquery#job",
        "id": f"acme-billing:US.{job_id}",
        "selfLink": "",
        "jobReference": {"projectId": "acme-billing", "jobId": job_id, "location": "US"},
        "configuration": {
            "jobType": "QUERY",
            "query": {
                "query": "SELECT ...",
                "useLegacySql": False,
                "destinationTable": {"projectId": "acme-billing", "datasetId": "_6a1b", "tableId": "anon7c2e"},
            },
        },
        "status": {"state": "DONE"},
        "statistics": {
            "creationTime": "1793500000000",
            "startTime": "1793500000100",
            "endTime": "1793500001000",
            "totalBytesProcessed": "1048576",
            "query": {"totalBytesProcessed": "1048576", "statementType": "SELECT", "cacheHit": False},
        },
    }


Route = Callable[[str, dict[str, list[str]], bytes], tuple[int, dict[str, str], Any]]


class FakeGoogle:
    """Serve ``routes`` (method, path prefix → handler) on 127.0.0.1; records every request."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, Route]] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlparse(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                for method, prefix, route in fake.routes:
                    if method == self.command and url.path.startswith(prefix):
                        status, headers, document = route(url.path, parse_qs(url.query), body)
                        break
                else:
                    status, headers, document = 404, {}, {"error": {"code": 404, "message": f"no route {url.path}"}}
                payload = json.dumps(document, default=str).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json; charset=UTF-8", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def route(self, method: str, prefix: str, handler: Route) -> None:
        self.routes.append((method, prefix, handler))

    def serve_query_pages(self, pages: dict[str | None, list[tuple[int, dict[str, str], Any]]]) -> None:
        """Answer jobs.query (token None) and getQueryResults (by pageToken) from queues of responses."""

        def handler(path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict[str, str], Any]:
            token = query.get("pageToken", [None])[0]
            queue = pages[token]
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self.route("POST", "/bigquery/v2/projects/acme-billing/queries", handler)
        self.route("GET", "/bigquery/v2/projects/acme-billing/queries/", handler)
        self.route("GET", "/bigquery/v2/projects/acme-billing/jobs/", lambda path, query, body: ok(job_resource()))

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def ok(document: Any) -> tuple[int, dict[str, str], Any]:
    return 200, {}, document


def money(amount: str) -> Decimal:
    return Decimal(amount)
