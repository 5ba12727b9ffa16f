"""Canary secrets planted in the credential chain never reach logs or outputs, even at DEBUG."""

from __future__ import annotations

import logging

import boto3
import requests
from chargeback_aws.cost_explorer import CostExplorerCollector
from chargeback_aws.data_exports import DataExportsCollector
from moto import mock_aws
from test_aws_data_exports import BUCKET, CONFIG, FILE_1, deliver, gzip_csv

from chargeback_engine.plugin import Period

CANARY_SECRET = "canary-secret-Zq8v1f0e2Y7TnX"
CANARY_TOKEN = "canary-session-token-Kd93mP2"


def test_no_secret_in_logs_or_outputs(monkeypatch, caplog, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACANARYACCESSKEY1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        deliver(boto3.client("s3"), "exec-1", {"part-1.csv.gz": gzip_csv(FILE_1)})
        canned = {
            "results": [
                {
                    "ResultsByTime": [
                        {
                            "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"},
                            "Total": {
                                "UnblendedCost": {"Amount": "1", "Unit": "USD"},
                                "AmortizedCost": {"Amount": "1", "Unit": "USD"},
                            },
                            "Groups": [],
                            "Estimated": False,
                        }
                    ]
                }
            ]
        }
        requests.post("http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results", json=canned)
        caplog.set_level(logging.DEBUG)  # after the test's own setup calls: only the collectors are judged
        sources = [
            *DataExportsCollector().collect(CONFIG, Period(2026, 10)),
            *CostExplorerCollector().collect(
                {"collector": "aws-cost-explorer", "granularity": "MONTHLY"}, Period(2026, 10)
            ),
        ]
    assert any(r.name.startswith("botocore") for r in caplog.records)  # DEBUG logging really was on
    outputs = [caplog.text, *capsys.readouterr()]
    for source in sources:
        outputs += [source.version, repr(source.details), source.table.to_pandas().to_csv()]
    for text in outputs:
        assert CANARY_SECRET not in text
        assert CANARY_TOKEN not in text
