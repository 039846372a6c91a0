"""Log output of the flows/ commands (`vr pipeline`, `vr registry`, `vr servers`)."""
from __future__ import annotations

import logging


def cli_logging() -> None:
    """INFO logs of flows.* on stderr for the commands (Prefect's root handler shows warnings only)."""
    logger = logging.getLogger("flows")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)
