"""A canary OAuth token used by every Google client never reaches logs or outputs, even at DEBUG."""

from __future__ import annotations

import logging

import google.oauth2.credentials
from chargeback_gcp.bigquery_export import BigQueryBillingCollector
from chargeback_gcp.clients import GoogleClients
from gcp_fake_server import FakeGoogle, ok, result_page
from google.cloud import bigquery, billing_v1
from test_gcp_bigquery import CONFIG, PAGE_1, PERIOD

CANARY = "ya29.canary-Hk29dLq0vPz7"


def test_no_token_in_logs_or_outputs(caplog, capsys, monkeypatch):
    monkeypatch.setenv("GOOGLE_SDK_PYTHON_LOGGING_SCOPE", "google")  # the client libraries' own request logging
    credentials = google.oauth2.credentials.Credentials(token=CANARY)
    with FakeGoogle() as server:
        server.serve_query_pages({None: [ok(result_page(PAGE_1, None))]})
        server.route("GET", "/v1/billingAccounts/01A2B3-C4D5E6-F7A8B9/projects", lambda p, q, b: ok({}))
        server.route("GET", "/v1/billingAccounts", lambda p, q, b: ok({"billingAccounts": []}))
        options = {"api_endpoint": server.url}
        clients = GoogleClients(
            bigquery=bigquery.Client(project="acme-billing", credentials=credentials, client_options=options),
            billing=billing_v1.CloudBillingClient(credentials=credentials, transport="rest", client_options=options),
            catalog=billing_v1.CloudCatalogClient(credentials=credentials, transport="rest", client_options=options),
        )
        caplog.set_level(logging.DEBUG)
        [source] = BigQueryBillingCollector(clients_factory=lambda p, l: clients).collect(
            dict(CONFIG, enrich_names=True), PERIOD
        )
        sent = [
            {k.lower(): v for k, v in headers.items()}.get("authorization", "") for _, _, headers, _ in server.requests
        ]
    assert sent and all(CANARY in header for header in sent)  # the token really was used on every call
    assert caplog.records  # and something was logged at DEBUG
    outputs = [
        caplog.text,
        *capsys.readouterr(),
        source.version,
        repr(source.details),
        source.table.to_pandas().to_csv(),
    ]
    assert not [text for text in outputs if CANARY in text]
