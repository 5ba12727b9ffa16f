"""Built-in notifiers: JSON lines (stdout, stderr or the log), a webhook, and SMTP email.

Registered through the ``chargeback_engine`` entry points like any third-party plugin.
Secrets never sit in a notifier's options: the email password is read from the
environment variable the options name. A webhook URL is itself a secret (Slack, Teams and
most chat webhooks carry their token in it), so errors name it only redacted, and drop
the underlying exception (``from None``): its traceback would repeat the URL.
"""

from __future__ import annotations

import json
import os
import smtplib
import sys
import urllib.request
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import Any

from chargeback_engine.components import Alert
from chargeback_engine.errors import NotifyError
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.logs import get_logger
from chargeback_engine.redact import redact, redact_url

log = get_logger(__name__)


class JsonNotifier:
    """One JSON object per alert, on a line of its own, on stdout or stderr or as a log event."""

    name = "json"
    options_schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"stream": {"enum": ["stdout", "stderr", "log"], "default": "stdout"}},
    }

    def send(self, alert: Alert, options: Mapping[str, Any]) -> None:
        stream = options.get("stream", "stdout")
        if stream == "log":
            log.warning("alert", **alert.as_dict())
            return
        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write(json.dumps(alert.as_dict(), sort_keys=True) + "\n")
        out.flush()


class WebhookNotifier:
    """HTTP POST of the alert as JSON; any non-2xx answer is a failure."""

    name = "webhook"
    options_schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "pattern": "^https?://", "maxLength": 2048},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": 10},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 20},
        },
    }

    def send(self, alert: Alert, options: Mapping[str, Any]) -> None:
        body = json.dumps(alert.as_dict(), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", **options.get("headers", {})}
        request = urllib.request.Request(options["url"], data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=options.get("timeout", 10)) as response:
                status = response.status
        except OSError as exc:  # URLError and HTTPError are OSErrors
            raise NotifyError(redact(f"webhook {redact_url(options['url'])}: {exc}")) from None
        if not 200 <= status < 300:
            raise NotifyError(f"webhook {redact_url(options['url'])} answered {status}")


class EmailNotifier:
    """A plain-text email over SMTP, optionally with STARTTLS and a login."""

    name = "email"
    options_schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["host", "from", "to"],
        "properties": {
            "host": {"type": "string", "minLength": 1, "maxLength": 255},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 25},
            "from": {"type": "string", "minLength": 3, "maxLength": 320},
            "to": {
                "type": "array",
                "items": {"type": "string", "minLength": 3, "maxLength": 320},
                "minItems": 1,
                "maxItems": 100,
            },
            "starttls": {"type": "boolean", "default": False},
            "username": {"type": "string", "maxLength": 320},
            "password_env": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": 10},
        },
    }

    def send(self, alert: Alert, options: Mapping[str, Any]) -> None:
        message = EmailMessage()
        message["From"] = options["from"]
        message["To"] = ", ".join(options["to"])
        message["Subject"] = f"[chargeback] {alert.kind} {alert.period} {alert.cost_center}"
        message["X-Chargeback-Alert-Id"] = alert.alert_id
        message.set_content(alert.message + "\n\n" + json.dumps(alert.as_dict(), indent=2, sort_keys=True) + "\n")
        try:
            with smtplib.SMTP(options["host"], options.get("port", 25), timeout=options.get("timeout", 10)) as smtp:
                if options.get("starttls"):
                    smtp.starttls()
                if "username" in options:
                    smtp.login(options["username"], os.environ.get(options.get("password_env", ""), ""))
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(redact(f"email via {options['host']}:{options.get('port', 25)}: {exc}")) from None


@hookimpl
def chargeback_register_notifiers(register: Callable[[Any], None]) -> None:
    register(JsonNotifier())
    register(WebhookNotifier())
    register(EmailNotifier())
