"""The one redaction helper: credentials blanked from every log line and error message.

Secrets reach text in a few recognisable shapes, and each is blanked to ``***`` while the
rest stays readable (scheme, host, the parameter's name), so the message still says where
it went wrong:

- a URL's user info (``https://user:pass@host``), every query-string value (tokens, API
  keys, Azure SAS ``sig=``), the path of known webhook hosts (Slack, Teams, Discord keep
  their secret in the path) and any path segment that looks like a token;
- ``Bearer``/``Basic`` credentials and credential headers (``Authorization``,
  ``X-Amz-Security-Token``, ``x-goog-api-key``, ``Ocp-Apim-Subscription-Key``);
- ``password=…``, ``client_secret: …`` and similar key-value pairs, and credentials in
  XML or JSON bodies (STS, OAuth token endpoints), as SDKs print them at DEBUG.

Used by the CLI's structlog chain (:func:`redact_event_dict`), by its error handler, by
notifier errors, and by the filter on SDK loggers (:mod:`chargeback_engine.collecting`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

MASK = "***"

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@]*@")
_QUERY_VALUE = re.compile(r"([?&;][^=&#;]+=)[^&#;]*")
#: Hosts whose webhook URLs carry their secret in the path, not the query.
_WEBHOOK_HOST = re.compile(
    r"^([a-zA-Z][a-zA-Z0-9+.-]*://(?:[^/?#@]*@)?(?:hooks\.slack\.com|[^/?#]*\.webhook\.office\.com|outlook\.office\.com"
    r"|(?:[^/?#]*\.)?discord(?:app)?\.com|[^/?#]*\.logic\.azure\.com(?::\d+)?))(/[^?#]*)",
    re.IGNORECASE,
)
#: A path segment that is a token rather than a name: long, mixing letters and digits.
_TOKEN_SEGMENT = re.compile(
    r"(?<=/)(?=[A-Za-z0-9_\-.~%@]*[0-9])(?=[A-Za-z0-9_\-.~%@]*[A-Za-z])[A-Za-z0-9_\-.~%@]{24,}(?=[/?#]|$)"
)

_TEXT_PATTERNS = [
    re.compile(r"(\b(?:Bearer|Basic|Token|Digest)\s+)[A-Za-z0-9\-._~+/=:%]{6,}", re.IGNORECASE),
    # header or canonical-request line: X-Amz-Security-Token: ..., 'Authorization': b'...'
    re.compile(
        r"((?:x-amz-security-token|authorization|proxy-authorization|x-goog-api-key|ocp-apim-subscription-key"
        r"|x-api-key|api-key)['\"]?\s*[:=]\s*(?-i:b)?['\"]?)([^'\"\n,}]+)",
        re.IGNORECASE,
    ),
    # key=value or key: value with a secret-sounding key
    re.compile(
        r"(\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|credential|signature)"
        r"['\"]?\s*[=:]\s*['\"]?)([^\s'\",}&]+)",
        re.IGNORECASE,
    ),
    # credentials in XML or JSON response bodies (STS, token endpoints)
    re.compile(r"(<(?:SecretAccessKey|SessionToken|AccessKeyId)>)([^<]+)"),
    re.compile(
        r"(\\?[\"'](?:SecretAccessKey|SessionToken|secretAccessKey|sessionToken|access_token|refresh_token|"
        r"id_token|client_secret|accessToken|private_key)\\?[\"']\s*:\s*\\?[\"'])([^\"'\\]+)"
    ),
]


def redact_url(url: str) -> str:
    """``url`` with its user info, query values, webhook path and token-like segments blanked."""
    url = _WEBHOOK_HOST.sub(rf"\1/{MASK}", url)
    url = _USERINFO.sub(rf"\1{MASK}@", url)
    url = _QUERY_VALUE.sub(rf"\1{MASK}", url)
    return _TOKEN_SEGMENT.sub(MASK, url)


def redact(text: str, secrets: frozenset[str] | set[str] = frozenset()) -> str:
    """``text`` with every credential shape above blanked, and each of ``secrets`` too."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    for pattern in _TEXT_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def redact_value(value: Any) -> Any:
    """Text redacted inside nested dicts, lists and tuples; other values as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def redact_event_dict(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """A structlog processor: every text value of the event redacted (put it before the renderer,
    after ``format_exc_info``, so tracebacks are redacted too)."""
    return {k: redact_value(v) for k, v in event_dict.items()}
