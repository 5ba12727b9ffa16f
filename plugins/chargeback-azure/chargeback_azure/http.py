"""Azure plumbing the collectors share: standard credentials, explicit timeouts, one retry policy.

The azure-core pipelines here carry no retry policy of their own: every call goes through
:class:`chargeback_engine.plugin.RetryPolicy`, which honours ``Retry-After`` (and
Cost Management's ``x-ms-ratelimit-*-retry-after`` headers) as a floor on the wait.

The Azure SDK is imported inside the functions that use it, not here: the engine imports
the collectors to register them on every command, and most commands never call Azure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from chargeback_engine.plugin import InputError, RetryPolicy

T = TypeVar("T")

#: Seconds; a hung connection must fail and be retried, not hang the run.
CONNECTION_TIMEOUT = 10
READ_TIMEOUT = 120

#: Azure SDK loggers that print request headers: the network-trace policies (``logging_enable``)
#: log Authorization in clear; the default HTTP logging policy redacts it itself.
SDK_LOGGERS = (
    "azure.core.pipeline.policies._universal",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.storage.blob._shared.policies",
    "azure.identity",
)


class Throttled(Exception):
    """The service said "not now" (429 or 5xx); ``wait`` is its Retry-After, in seconds."""

    def __init__(self, status: int, wait: float):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.wait = wait


def default_credential() -> Any:
    """azure-identity's standard chain: environment, workload identity, managed identity, CLI."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def retry_wait(headers: Mapping[str, str]) -> float:
    """The longest of the Retry-After headers present (seconds), or 0."""
    waits = [0.0]
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "retry-after" or (lowered.startswith("x-ms-ratelimit-") and lowered.endswith("retry-after")):
            try:
                waits.append(float(value))
            except ValueError:
                continue  # an HTTP-date Retry-After: fall back to our own backoff
    return max(waits)


def retry_after(exc: Exception) -> float | None:
    from azure.core.exceptions import (
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, Throttled):
        return exc.wait
    if (
        isinstance(exc, HttpResponseError)
        and exc.status_code is not None
        and (exc.status_code == 429 or exc.status_code >= 500)
    ):
        return retry_wait(exc.response.headers) if exc.response is not None else 0.0  # type: ignore[attr-defined]  # azure-core's response protocol omits headers, which every response it raises with has
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return 0.0
    return None


def call(retry: RetryPolicy, operation: Callable[[], T], what: str) -> T:
    """Call Azure with retries; an error that retrying cannot fix becomes an InputError naming the call."""
    from azure.core.exceptions import HttpResponseError

    try:
        return retry.call(operation, retry_after=retry_after, what=what)
    except HttpResponseError as exc:
        code = exc.error.code if exc.error is not None else exc.reason
        raise InputError(f"{what}: HTTP {exc.status_code}: {code}") from exc
