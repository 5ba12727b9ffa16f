"""boto3 clients the collectors share: standard credential chain, explicit timeouts, our retries.

botocore's own retries are switched off so that one policy (jittered backoff up to the
collection's deadline, :class:`chargeback_engine.plugin.RetryPolicy`) governs every call
and can be tested with a fake clock. The standard AWS settings still apply, read the way
botocore reads them (environment first, then the shared config profile):
``AWS_MAX_ATTEMPTS`` / ``max_attempts`` caps the attempts of each call, and
``AWS_RETRY_MODE`` / ``retry_mode`` is passed to botocore, so ``adaptive`` keeps its
client-side rate limiter.

boto3 and botocore are imported inside the functions that use them, not here: the engine
imports this module to register the collectors on every command, and most commands never
call AWS.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from chargeback_engine.plugin import InputError, RetryPolicy, redact_sdk_logs

T = TypeVar("T")

#: Seconds; a hung connection must fail and be retried, not hang the run.
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60

#: Error codes AWS uses for "slow down" and "try again".
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalServerError",
        "RequestTimeout",
        "DataUnavailableException",
    }
)

#: The AWS services the collectors and enrichers call.
Service = Literal["ce", "sts", "s3", "resourcegroupstaggingapi", "organizations"]

ClientFactory = Callable[[Service, "str | None"], Any]


#: botocore loggers that print signed headers or credential responses at DEBUG.
SDK_LOGGERS = ("botocore.auth", "botocore.endpoint", "botocore.parsers", "botocore.hooks", "botocore.credentials")


def default_client(service: Service, region: str | None) -> Any:
    """A client whose credentials come from boto3's standard chain (env, profile, SSO, role)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials else None
    redact_sdk_logs(SDK_LOGGERS, [frozen.secret_key, frozen.token] if frozen else [])
    mode = _aws_setting("retry_mode", "AWS_RETRY_MODE")
    if mode is not None and mode not in ("legacy", "standard", "adaptive"):
        raise InputError(
            f"AWS_RETRY_MODE (or retry_mode in the AWS profile) is {mode!r}; expected legacy, standard or adaptive"
        )
    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": 1, "mode": mode} if mode else {"total_max_attempts": 1},
    )
    return session.client(service, region_name=region, config=config)


def max_attempts() -> int | None:
    """``AWS_MAX_ATTEMPTS`` (or ``max_attempts`` in the AWS profile): attempts per call, if set."""
    value = _aws_setting("max_attempts", "AWS_MAX_ATTEMPTS")
    if value is None:
        return None
    try:
        attempts = int(value)
    except (TypeError, ValueError):
        attempts = 0
    if attempts < 1:
        raise InputError(
            f"AWS_MAX_ATTEMPTS (or max_attempts in the AWS profile) is {value!r}; expected a whole number of at least 1"
        )
    return attempts


def _aws_setting(name: str, variable: str) -> Any:
    """A botocore config variable, from the environment or the shared config profile."""
    import botocore.session

    try:
        return botocore.session.Session().get_config_variable(name)
    except ValueError:  # botocore's own int() of a malformed max_attempts: report the text as written
        return os.environ.get(variable)


def retry_after(exc: Exception) -> float | None:
    """0 (retry after the backoff) for throttling, 5xx and network faults; None for the rest."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        return 0.0 if code in _TRANSIENT_CODES or status == 429 or status >= 500 else None
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return 0.0
    return None


def call(retry: RetryPolicy, operation: Callable[[], T], what: str) -> T:
    """Call AWS with retries; an error that retrying cannot fix becomes an InputError naming the call."""
    from botocore.exceptions import ClientError

    try:
        return retry.call(operation, retry_after=retry_after, what=what)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise InputError(f"{what}: {error.get('Code', 'error')}: {error.get('Message', '')}") from exc
