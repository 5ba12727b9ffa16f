"""`chargeback run` with the installed AWS plugin: a policy source read from (moto's) S3 into the ledger."""

from __future__ import annotations

import csv
from decimal import Decimal

from click.testing import CliRunner
from test_aws_data_exports import (
    EFFECTIVE,
    FILE_1,
    FILE_2,
    deliver,
    gzip_csv,
    s3,  # noqa: F401 (the moto bucket fixture)
)
from test_aws_engine import POLICY

from chargeback_engine.cli import main

SOURCES = (
    "    - {id: cur, collector: aws-data-exports, bucket: acme-billing, prefix: exports, "
    "export_name: acme-cur2, table: cur2}"
)


def test_chargeback_run_collects_the_policy_source(tmp_path, s3):  # noqa: F811 (the imported fixture)
    deliver(s3, "exec-3", {"part-1.csv.gz": gzip_csv(FILE_1), "part-2.csv.gz": gzip_csv(FILE_2)})
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY % SOURCES)
    extra = tmp_path / "extra.csv"  # `run` wants an --input; one more line item, from a file
    extra.write_text(
        "BilledCost,EffectiveCost,BillingCurrency,BillingAccountId,ChargePeriodStart,ChargePeriodEnd,Tags\n"
        '1.5,1.5,USD,999999999999,2026-10-01T00:00:00Z,2026-10-02T00:00:00Z,"{""team"":""search""}"\n'
    )
    result = CliRunner().invoke(
        main,
        ["run", "--policy", str(policy), "--input", str(extra), "--period", "2026-10", "--out", str(tmp_path / "out")],
    )
    assert result.exit_code == 0, result.output
    with (tmp_path / "out" / "summary.csv").open() as f:
        total = sum(Decimal(row["amount"]) for row in csv.DictReader(f))
    assert total == EFFECTIVE + Decimal("1.5")


def test_no_planted_credential_reaches_the_cli_log_an_error_or_an_output(tmp_path, s3, monkeypatch):  # noqa: F811
    """The whole CLI at -vv with JSON logs: botocore's DEBUG lines pass the structlog chain."""
    secret, token = "canary-secret-Wq4r7T1yU9", "canary-session-token-Pq82Lm"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    deliver(s3, "exec-3", {"part-1.csv.gz": gzip_csv(FILE_1)})
    outputs = []
    for bucket in ("acme-billing", "no-such-bucket"):  # a run that succeeds, and one whose error names the call
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY % SOURCES.replace("acme-billing", bucket))
        extra = tmp_path / "extra.csv"
        extra.write_text(
            "BilledCost,EffectiveCost,BillingCurrency,BillingAccountId,ChargePeriodStart,ChargePeriodEnd\n"
            "1.5,1.5,USD,999999999999,2026-10-01T00:00:00Z,2026-10-02T00:00:00Z\n"
        )
        result = CliRunner().invoke(
            main,
            [
                "--log-format",
                "json",
                "-vv",
                "run",
                "--policy",
                str(policy),
                "--input",
                str(extra),
                "--period",
                "2026-10",
                "--out",
                str(tmp_path / bucket),
            ],
        )
        assert result.exit_code == (0 if bucket == "acme-billing" else 1), result.output
        outputs.append(result.output)
        outputs += [p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / bucket).rglob("*") if p.is_file()]
    assert "NoSuchBucket" in outputs[-1] or "no-such-bucket" in outputs[-1]
    assert [text for text in outputs if secret in text or token in text] == []
