"""Canary secrets planted in every notifier never reach a log line, an error or an output.

Real components only: a local HTTP server that refuses every webhook (as a revoked Slack
or Teams hook does), a closed port, a URL that urllib refuses outright, and an aiosmtpd
server that rejects the login. The CLI runs with ``--log-format json -vv`` so every log
event, tracebacks included, passes through the structlog chain.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.redact import redact

SLACK = "Xq7cB2dE9fGhJkLmNpQrSt4V"  # the last segment of a Slack incoming-webhook URL
TEAMS = "7f3c2a1e-9b4d-4c8e-a6f0-2d1b3c4e5f60@0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
QUERY_TOKEN = "qTok3n-canary-8c1d5e"
BASIC_PASSWORD = "bAs1c-canary-pass"
BEARER = "eyJhbGciOiJIUzI1NiJ9.Y2FuYXJ5.c2ln"
SAS_SIG = "sWq2Y3dvcmQ%3D"
SMTP_USER = "canary-user-4d2f"
SMTP_PASSWORD = "canary-smtp-pass-91ab"
CANARIES = (
    SLACK,
    TEAMS.split("@")[0],
    TEAMS.split("@")[1],
    QUERY_TOKEN,
    BASIC_PASSWORD,
    BEARER,
    SAS_SIG,
    SMTP_USER,
    SMTP_PASSWORD,
)


class _Refusing(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _RefuseLogin:
    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
        return AuthResult(success=False, handled=False)


@pytest.fixture
def smtp() -> Iterator[int]:
    port = _closed_port()
    controller = Controller(
        object(), hostname="127.0.0.1", port=port, authenticator=_RefuseLogin(), auth_require_tls=False
    )
    controller.start()
    yield port
    controller.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_planted_secret_reaches_a_log_an_error_or_an_output(
    web: str, smtp: int, sample_dir: Path, tmp_path: Path
) -> None:
    notifiers = tmp_path / "notifiers.yaml"
    notifiers.write_text(f"""\
notifiers:
  - {{id: slack, type: webhook, url: "http://{web}/services/T00000000/B00000000/{SLACK}"}}
  - {{id: teams, type: webhook, url: "http://{web}/webhookb2/{TEAMS}/IncomingWebhook/0123456789abcdef0123456789abcdef/7f3c2a1e-9b4d-4c8e-a6f0-2d1b3c4e5f60"}}
  - {{id: query, type: webhook, url: "http://{web}/hook?token={QUERY_TOKEN}&sig={SAS_SIG}",
      headers: {{Authorization: "Bearer {BEARER}"}}}}
  - {{id: closed, type: webhook, url: "http://127.0.0.1:{_closed_port()}/hook?api_key={QUERY_TOKEN}"}}
  - {{id: basic, type: webhook, url: "http://alerts:{BASIC_PASSWORD}@{web}/hook"}}
  - {{id: mail, type: email, host: 127.0.0.1, port: {smtp}, from: a@example.com, to: [b@example.com],
      username: {SMTP_USER}, password_env: CANARY_SMTP_PASSWORD}}
""")
    env = {
        "CHARGEBACK_DB": f"sqlite:///{tmp_path / 'cli.db'}",
        "CHARGEBACK_RUNS": str(sample_dir),
        "CANARY_SMTP_PASSWORD": SMTP_PASSWORD,
    }
    result = CliRunner().invoke(
        main,
        ["--log-format", "json", "-vv", "alerts", "check", "--as-of", "2026-10-21", "--notifiers", str(notifiers)],
        env=env,
    )
    assert result.exit_code == 1, result.output
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    for channel in ("slack", "teams", "query", "closed", "basic", "mail"):
        assert f"on {channel}: " in output  # every channel did fail, and said so
    assert "alert not delivered" in output  # and the failures were logged
    leaked = sorted(
        {
            c
            for c in CANARIES
            if c in output
            or any(c in p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p != notifiers)
        }
    )
    assert not leaked, leaked


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"https://hooks.slack.com/services/T00000000/B00000000/{SLACK}", "https://hooks.slack.com/"),
        (f"https://acme.webhook.office.com/webhookb2/{TEAMS}/IncomingWebhook/abc/def", "acme.webhook.office.com"),
        (f"https://discord.com/api/webhooks/123456/{SLACK}", "discord.com"),
        (f"https://acct.blob.core.windows.net/exports/p.csv?sv=2022-11-02&sig={SAS_SIG}&se=2026", "/exports/p.csv?sv="),
        (
            f"https://prod-00.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig={SAS_SIG}",
            "logic.azure.com",
        ),
        (f"http://alerts:{BASIC_PASSWORD}@example.com/hook", "http://***@example.com/hook"),
        (f"Authorization: Bearer {BEARER}", "Authorization: "),
        (f"curl -H 'Authorization: Basic {BASIC_PASSWORD}'", "curl -H"),
        (f"{{'X-Amz-Security-Token': b'{QUERY_TOKEN}'}}", "X-Amz-Security-Token"),
        (f"client_secret={QUERY_TOKEN} tenant=acme", "tenant=acme"),
        (f'{{"access_token": "{BEARER}", "expires_in": 3599}}', '"expires_in": 3599'),
        (f"<SessionToken>{QUERY_TOKEN}</SessionToken>", "<SessionToken>"),
    ],
)
def test_each_credential_shape_is_blanked_and_the_rest_kept(text: str, kept: str) -> None:
    redacted = redact(text)
    assert not [c for c in CANARIES if c in redacted], redacted
    assert kept in redacted and "***" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "policies/acme.yaml:12:5: $.rules[0].match: unknown key 'servce'",
        "s3://billing/data/BILLING_PERIOD=2026-10/part-00001.csv.gz: row 5, column line_item_unblended_cost: '12,50'",
        "webhook http://127.0.0.1:8080/hook answered 500",
    ],
)
def test_ordinary_messages_pass_unchanged(text: str) -> None:
    assert redact(text) == text
