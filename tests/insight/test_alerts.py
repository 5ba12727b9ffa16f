"""Budget thresholds, exactly-once delivery, and the built-in notifiers against real servers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from chargeback_engine.insight import Alert, Insight, InsightStore, NotifyError, channels, deliver
from chargeback_engine.insight.alerts import budget_alerts
from chargeback_engine.notifiers.standard import EmailNotifier, JsonNotifier, WebhookNotifier
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registered, build_registry, get_plugin_manager

NOTIFIERS = {n.name: Registered(n, "notifiers") for n in (JsonNotifier(), WebhookNotifier(), EmailNotifier())}


def alert(cc: str = "CC-1", threshold: int = 80) -> Alert:
    return Alert(
        "budget-actual", "2026-10", cc, Decimal(81), f"{cc} reached {threshold}%", Decimal(threshold), Decimal(100)
    )


class Webhook(ThreadingHTTPServer):
    """A real HTTP server that records every POST body; ``status`` sets its answer."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 204
        received = self.bodies
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(server.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Mailbox]]:
    mailbox = Mailbox()
    with socket.socket() as probe:  # aiosmtpd needs a concrete port to check that it started
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield controller, mailbox
    controller.stop()


def test_thresholds_on_actual_and_forecast() -> None:
    alerts = budget_alerts(
        Period(2026, 10),
        {"A": Decimal(1000), "B": Decimal(1000)},
        actuals={"A": Decimal(800), "B": Decimal(500)},
        forecasts={"A": Decimal(1200), "B": Decimal("999.99")},
    )
    assert [(a.cost_center, a.kind, a.threshold_pct) for a in alerts] == [
        ("A", "budget-actual", 80),
        ("A", "budget-forecast", 80),
        ("A", "budget-forecast", 100),
        ("B", "budget-forecast", 80),
    ]


def test_an_alert_is_sent_once_per_period_and_threshold(store: InsightStore, webhook: Webhook) -> None:
    targets = channels([{"type": "webhook", "url": webhook.url}], NOTIFIERS)
    first = deliver([alert(), alert(threshold=100)], targets, store)
    again = deliver([alert(), alert(threshold=100), alert("CC-2")], targets, store)
    assert len(first.sent) == 2 and len(again.sent) == 1 and len(again.skipped) == 2
    assert [b["cost_center"] for b in webhook.bodies] == ["CC-1", "CC-1", "CC-2"]
    assert {b["alert_id"] for b in webhook.bodies} == {
        a.alert_id for a in (alert(), alert(threshold=100), alert("CC-2"))
    }
    assert len(store.sent()) == 3


def test_a_failed_delivery_is_retried_next_time(store: InsightStore, webhook: Webhook) -> None:
    targets = channels([{"type": "webhook", "url": webhook.url}], NOTIFIERS)
    webhook.status = 500
    failed = deliver([alert()], targets, store)
    [(_, channel, error)] = failed.failed
    assert (
        channel == "webhook"
        and error == f"webhook {webhook.url}: HTTP Error 500: Internal Server Error"
        and store.sent() == []
    )
    webhook.status = 200
    assert len(deliver([alert()], targets, store).sent) == 1
    assert len(webhook.bodies) == 2


def test_email_over_a_real_smtp_server(tmp_path, smtp) -> None:
    controller, mailbox = smtp
    store = InsightStore(f"sqlite:///{tmp_path / 'a.db'}")
    targets = channels(
        [
            {
                "type": "email",
                "host": "127.0.0.1",
                "port": controller.port,
                "from": "finops@example.com",
                "to": ["owner@example.com", "lead@example.com"],
            }
        ],
        NOTIFIERS,
    )
    result = deliver([alert(), alert()], targets, store)
    assert len(result.sent) == 1 and len(result.skipped) == 1
    [(recipients, message)] = mailbox.messages
    assert recipients == ["owner@example.com", "lead@example.com"]
    assert message["Subject"] == "[chargeback] budget-actual 2026-10 CC-1"
    assert message["X-Chargeback-Alert-Id"] == alert().alert_id
    assert "CC-1 reached 80%" in message.get_payload()


def test_json_notifier_writes_one_line_per_alert(tmp_path, capsys) -> None:
    deliver(
        [alert(), alert("CC-2")],
        channels([{"type": "json"}], NOTIFIERS),
        InsightStore(f"sqlite:///{tmp_path / 'a.db'}"),
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["cost_center"] for line in lines] == ["CC-1", "CC-2"]


def test_notifier_config_errors_are_located() -> None:
    with pytest.raises(NotifyError, match=r"notifiers\[0\]: unknown notifier type 'pager'"):
        channels([{"type": "pager"}], NOTIFIERS)
    with pytest.raises(NotifyError, match=r"notifiers\[1\].url: 'ftp://x' does not match"):
        channels([{"type": "json"}, {"type": "webhook", "url": "ftp://x"}], NOTIFIERS)
    with pytest.raises(NotifyError, match=r"notifiers\[1\]: two notifiers share the channel id 'json'"):
        channels([{"type": "json"}, {"type": "json"}], NOTIFIERS)


def test_built_in_notifiers_register_through_the_plugin_hook() -> None:
    registry = build_registry(get_plugin_manager())
    assert {"json", "webhook", "email"} <= set(registry.notifiers)
    assert registry.notifiers["webhook"].plugin == "notifiers"


def test_the_sample_raises_budget_and_anomaly_alerts(insight: Insight) -> None:
    found = insight.alerts(date(2026, 10, 21))
    kinds = {(a.kind, a.cost_center) for a in found}
    assert ("budget-forecast", "CC-1003") in kinds and ("budget-actual", "CC-1003") in kinds
    assert ("anomaly", "CC-1002") in kinds and ("anomaly", "CC-1003") in kinds
    assert all(a.period == "2026-10" for a in found)
    assert len({a.alert_id for a in found}) == len(found)


def test_two_checks_at_once_send_an_alert_once(store: InsightStore, webhook: Webhook) -> None:
    targets = channels([{"type": "webhook", "url": webhook.url}], NOTIFIERS)
    start = threading.Barrier(4)
    results = []

    def check() -> None:
        start.wait()
        results.append(deliver([alert(), alert("CC-2")], targets, store))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.sent) for r in results) == 2 and sum(len(r.skipped) for r in results) == 6
    assert sorted(b["cost_center"] for b in webhook.bodies) == ["CC-1", "CC-2"]
