"""Structured logs: one JSON object per line on stderr, e.g. {"time": ..., "level": "info", "event": "start"}."""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("mnist_edge.serve")


class JsonLineFormatter(logging.Formatter):
    def __init__(self, fixed: dict[str, Any]) -> None:
        super().__init__()
        self.fixed = fixed  # fields every line carries, e.g. the worker's index and pid

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **self.fixed,
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(**fixed: Any) -> None:
    """Logs to stderr; every line carries the `fixed` fields."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLineFormatter(fixed))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log(event: str, level: int = logging.INFO, exc_info: bool = False, **fields: Any) -> None:
    logger.log(level, event, exc_info=exc_info, extra={"fields": fields})
