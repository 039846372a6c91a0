"""Bounded retries of MLflow calls, and one clear error when the tracking server stays unreachable.

MLflow already retries each HTTP request (MLFLOW_HTTP_REQUEST_MAX_RETRIES, _BACKOFF_FACTOR, _TIMEOUT);
these retries sit on top, for an outage longer than that (a server restarting) and for the sqlite
store's "database is locked". Only connection-type failures are retried: a rejected request (bad
parameter, missing model) fails at once. The final error names the server without its credentials.
Worst case before giving up: len(RETRY_DELAYS_S) + 1 times MLflow's per-request budget (with its
defaults, 7 retries backing off to about 4 minutes), plus the delays: lower MLflow's knobs to fail sooner.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from videoreasoner.core.tracking import redact

log = logging.getLogger("flows.registry")
T = TypeVar("T")
RETRY_DELAYS_S: tuple[float, ...] = (5.0, 30.0)  # seconds slept before the 2nd and 3rd attempt
_TRANSIENT = re.compile(
    r"Max retries exceeded|Connection (refused|reset|aborted)|RemoteDisconnected|Read timed out|"
    r"timeout exception|database is locked|Temporary failure in name resolution|"
    r"\b(502|503|504)\b.*(Bad Gateway|Service Unavailable|Gateway Time-?out)", re.I)
# MLflow's SQL store sets an alias by a read then an insert (SQLAlchemy's merge): when two registrations set
# the same alias at once, the later insert violates the alias table's key and the server answers 400.
# Setting the alias again updates the row, so that answer is retried like an outage.
_ALIAS_RACE = re.compile(r'unique constraint "?registered_model_alias_pk|'  # PostgreSQL, MySQL
                         r"UNIQUE constraint failed: registered_model_aliases")  # sqlite


class RegistryUnavailable(RuntimeError):
    """The MLflow tracking server (or store) could not be reached within the bounded retries."""




def server() -> str:
    import mlflow

    return redact(mlflow.get_tracking_uri())


def is_transient(exc: BaseException) -> bool:
    """A connection-type failure or an alias race (_ALIAS_RACE), looked for along the exception's cause
    chain (MLflow wraps requests' ConnectionError into an MlflowException whose message carries it)."""
    import requests

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            ConnectionError, TimeoutError)):
            return True
        if _TRANSIENT.search(str(exc)) or _ALIAS_RACE.search(str(exc)):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def retrying(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, retried after each delay of RETRY_DELAYS_S while it fails transiently;
    then RegistryUnavailable naming the server, `what` was being done, the attempts and the last error.
    Only idempotent calls (or ones made idempotent by their caller) belong here."""
    started = time.monotonic()
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                raise
            if delay is None:
                raise RegistryUnavailable(
                    f"MLflow tracking server {server()} unreachable while {what}: {attempt} attempts over "
                    f"{time.monotonic() - started:.1f} s; last error: {redact(str(exc))[:600]}") from exc
            reason = "raced another client" if _ALIAS_RACE.search(str(exc)) else "unreachable"
            log.warning("MLflow %s %s while %s (attempt %d of %d): retrying in %.1f s",
                        server(), reason, what, attempt, len(RETRY_DELAYS_S) + 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
