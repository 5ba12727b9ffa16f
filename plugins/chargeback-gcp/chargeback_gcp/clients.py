"""Google clients the collector uses: Application Default Credentials, explicit timeouts, our retries.

The client libraries' own retry objects are switched off so that one policy (jittered
backoff up to a deadline, :class:`chargeback_engine.plugin.RetryPolicy`) governs every
call and can be tested with a fake clock.

The Google libraries are imported inside the functions that use them, not here: the engine
imports the collector to register it on every command, and most commands never call Google.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from chargeback_engine.plugin import InputError, RetryPolicy

if TYPE_CHECKING:
    from google.api_core.retry import Retry

T = TypeVar("T")

#: Seconds for one API call, and for a query job to finish.
API_TIMEOUT = 60.0
QUERY_TIMEOUT = 900.0

#: Loggers that may print request headers or token responses at DEBUG.
SDK_LOGGERS = (
    "google.auth.transport.requests",
    "google.auth._default",
    "google.api_core",
    "urllib3.connectionpool",
    "google.cloud.bigquery",
)


@dataclass(frozen=True)
class GoogleClients:
    bigquery: Any
    billing: Any
    catalog: Any


class _BillingNotInstalled:
    """Stands in for the Cloud Billing clients when the ``billing`` extra is not installed.

    Only ``enrich_names`` and ``list_price_services`` call them, so the error waits for that use.
    """

    def __getattr__(self, name: str) -> Any:
        raise InputError(
            "gcp-bigquery-billing: enrich_names and list_price_services need the Cloud Billing client: "
            "pip install 'chargeback-gcp[billing]'"
        )


def default_clients(project: str | None, location: str | None) -> GoogleClients:
    """Clients whose credentials come from google-auth's standard chain (ADC)."""
    from google.cloud import bigquery

    billing: object
    catalog: object
    try:
        from google.cloud import billing_v1
    except ImportError:
        billing = catalog = _BillingNotInstalled()
    else:
        billing, catalog = billing_v1.CloudBillingClient(), billing_v1.CloudCatalogClient()
    return GoogleClients(bigquery=bigquery.Client(project=project, location=location), billing=billing, catalog=catalog)


def no_retry() -> Retry:
    """A retry object for the client libraries that never retries: :func:`call` does."""
    from google.api_core.retry import Retry

    return Retry(predicate=lambda exc: False)


def retry_after(exc: Exception) -> float | None:
    """0 (retry after the backoff) for 429, 5xx and network faults; Retry-After when the server sent one."""
    import requests
    from google.api_core import exceptions

    transient = (
        exceptions.TooManyRequests,
        exceptions.InternalServerError,
        exceptions.BadGateway,
        exceptions.ServiceUnavailable,
        exceptions.GatewayTimeout,
        requests.ConnectionError,
        requests.Timeout,
    )
    if not isinstance(exc, transient):
        return None
    response = getattr(exc, "response", None)
    header = response.headers.get("Retry-After") if response is not None and hasattr(response, "headers") else None
    try:
        return float(header) if header else 0.0
    except ValueError:
        return 0.0


def call(retry: RetryPolicy, operation: Callable[[], T], what: str) -> T:
    """Call Google with retries; an error that retrying cannot fix becomes an InputError naming the call."""
    from google.api_core import exceptions

    try:
        return retry.call(operation, retry_after=retry_after, what=what)
    except exceptions.GoogleAPICallError as exc:
        raise InputError(f"{what}: HTTP {exc.code}: {exc.message}") from exc
