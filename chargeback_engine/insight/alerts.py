"""Budget and anomaly alerts, and their delivery through notifier plugins exactly once.

Deciding (which thresholds are crossed, which anomalies pass the gates) is pure. Delivery
claims each (alert, channel) in the store before calling the notifier and releases the
claim if the notifier fails, so an alert is sent at most once per channel and a failed
one is retried by the next check. A notifier that cannot deliver raises
:class:`~chargeback_engine.errors.NotifyError` (the user's to fix: a refused login, a
webhook answering 500); anything else it does wrong is its plugin's bug, and is reported
naming the notifier and its plugin.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from chargeback_engine import display
from chargeback_engine.components import Alert
from chargeback_engine.errors import ChargebackError, NotifyError
from chargeback_engine.insight.anomalies import Anomaly
from chargeback_engine.logs import get_logger
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registered, plugin_fault, reported
from chargeback_engine.policy.yaml import JsonPath, YamlDocument, load_yaml_document
from chargeback_engine.redact import redact

if TYPE_CHECKING:
    from chargeback_engine.components import Notifier
    from chargeback_engine.insight.persistence import InsightStore

log = get_logger(__name__)

DEFAULT_THRESHOLDS = (Decimal(80), Decimal(100))


def budget_alerts(
    period: Period,
    budgets: Mapping[str, Decimal],
    actuals: Mapping[str, Decimal],
    forecasts: Mapping[str, Decimal],
    thresholds: Sequence[Decimal] = DEFAULT_THRESHOLDS,
    currency: str = "USD",
    names: Mapping[str, str] | None = None,
) -> list[Alert]:
    """An alert for every threshold that actual or forecast spend has reached.

    Amounts stay exact in the alert; only its message shows them as people read them.
    """
    alerts = []
    for cc, budget in sorted(budgets.items()):
        for kind, spend in (("budget-actual", actuals.get(cc)), ("budget-forecast", forecasts.get(cc))):
            if spend is None or budget <= 0:
                continue
            for threshold in sorted(thresholds):
                if spend * 100 >= budget * threshold:
                    what = "spend" if kind == "budget-actual" else "forecast month-end spend"
                    message = (
                        f"{display.cost_center(cc, names or {})}: {what} {display.money(spend, currency)} "
                        f"reached {display.percent(threshold, digits=0)} of the {period} budget "
                        f"{display.money(budget, currency)}"
                    )
                    alerts.append(Alert(kind, str(period), cc, spend, message, threshold, budget, currency=currency))
    return alerts


def anomaly_alerts(
    anomalies: Sequence[Anomaly], currency: str = "USD", names: Mapping[str, str] | None = None
) -> list[Alert]:
    return [
        Alert(
            "anomaly",
            str(Period.of(a.day)),
            a.cost_center,
            a.actual,
            f"{display.cost_center(a.cost_center, names or {})} / {a.service}: {display.money(a.actual, currency)} "
            f"on {a.day} against {display.money(a.expected, currency)} expected ({display.percent(a.impact_pct)})",
            details={
                "service": a.service,
                "day": a.day.isoformat(),
                "expected": format(a.expected, "f"),
                "impact": format(a.impact, "f"),
            },
            currency=currency,
        )
        for a in anomalies
    ]


@dataclass(frozen=True)
class Channel:
    """One configured notifier: a plugin component plus its options, under a channel id."""

    id: str
    notifier: Notifier
    options: Mapping[str, Any]
    plugin: str  # the plugin that registered the notifier, named when it breaks its contract

    def send(self, alert: Alert) -> None:
        """Deliver ``alert`` here, or raise: a :class:`NotifyError` when it could not be
        delivered, a :class:`~chargeback_engine.errors.PluginError` naming the notifier and its
        plugin when the notifier broke its contract (raised anything else, returned a value)."""
        registered = Registered(self.notifier, self.plugin)
        with reported("notifier", registered, self.notifier.name):
            returned = self.notifier.send(alert, self.options)  # type: ignore[func-returns-value]  # a third party's may
        if returned is not None:  # a False or an error code would otherwise count as sent
            raise plugin_fault(
                "notifier", registered, self.notifier.name, f"returned {returned!r} from send(), not None"
            )


def read_channels(path: Path, notifiers: Mapping[str, Registered[Notifier]]) -> list[Channel]:
    """The channels of a notifier config file, ``{notifiers: [{type: NAME, id?: ID, **options}]}``,
    read with the hardened YAML reader; every error names the file, line and column."""
    document = load_yaml_document(path)
    if not isinstance(document.data, dict):
        raise NotifyError(str(document.diagnostic((), "expected {notifiers: [...]}")))
    entries = document.data.get("notifiers", [])
    if not isinstance(entries, list):
        raise NotifyError(str(document.diagnostic(("notifiers",), "expected a list of notifiers")))
    return channels(entries, notifiers, document)


def channels(
    config: Sequence[Mapping[str, Any]],
    notifiers: Mapping[str, Registered[Notifier]],
    document: YamlDocument | None = None,
) -> list[Channel]:
    """Validate ``[{type: NAME, id?: ID, **options}]`` against each notifier's options schema
    (``notifiers`` is a registry's table, so a channel knows its plugin); errors are located
    in ``document`` when the entries were read from one."""

    def error(path: JsonPath, message: str) -> NotifyError:
        if document is not None:
            return NotifyError(str(document.diagnostic(("notifiers", *path), message)))
        return NotifyError(
            f"notifiers{''.join(f'[{p!r}]' if isinstance(p, int) else f'.{p}' for p in path)}: {message}"
        )

    result: list[Channel] = []
    for i, entry in enumerate(config):
        if not isinstance(entry, Mapping):
            raise error((i,), "expected a mapping with a notifier 'type'")
        kind: Any = entry.get("type")  # whatever the YAML holds: reported below unless a notifier's name
        if kind not in notifiers:
            raise error((i,), f"unknown notifier type {kind!r}; known: {', '.join(sorted(notifiers))}")
        options = {k: v for k, v in entry.items() if k not in ("type", "id")}
        notifier = notifiers[kind].component
        found = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(notifier.options_schema).iter_errors(options)
        )
        if found is not None:
            raise error((i, *found.absolute_path), found.message)
        channel = Channel(str(entry.get("id", kind)), notifier, options, notifiers[kind].plugin)
        if any(c.id == channel.id for c in result):
            raise error((i,), f"two notifiers share the channel id {channel.id!r}; give each an 'id'")
        result.append(channel)
    return result


@dataclass(frozen=True)
class Delivery:
    sent: tuple[tuple[str, str], ...]  # (alert_id, channel)
    skipped: tuple[tuple[str, str], ...]  # already sent before
    failed: tuple[tuple[str, str, str], ...]  # (alert_id, channel, error)


def deliver(alerts: Sequence[Alert], targets: Sequence[Channel], store: InsightStore) -> Delivery:
    """Send each alert on each channel at most once, ever; failures are released for a retry."""
    sent, skipped, failed = [], [], []
    for alert in alerts:
        payload = json.dumps(alert.as_dict(), sort_keys=True)
        for channel in targets:
            if not store.claim_alert(alert.alert_id, channel.id, alert.period, alert.kind, payload):
                skipped.append((alert.alert_id, channel.id))
                continue
            try:
                channel.send(alert)
            except ChargebackError as exc:  # any notifier failure leaves the alert unsent, never half-recorded
                store.release_alert(alert.alert_id, channel.id)
                error = redact(str(exc))  # a plugin notifier's error may hold its URL
                log.warning("alert not delivered", alert_id=alert.alert_id, channel=channel.id, error=error)
                failed.append((alert.alert_id, channel.id, error))
            else:
                sent.append((alert.alert_id, channel.id))
    return Delivery(tuple(sent), tuple(skipped), tuple(failed))
