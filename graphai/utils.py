"""Compatibility re-exports of graphai-lib's ``graphai.utils``."""

from __future__ import annotations

import logging
import os

from graphai.schema import (
    FunctionSchema,
    OpenAIAPI,
    Parameter,
    StrEnum,
    get_schemas,
    openai_type_mapping,
)

__all__ = [
    "FunctionSchema",
    "OpenAIAPI",
    "Parameter",
    "StrEnum",
    "get_schemas",
    "logger",
    "openai_type_mapping",
    "setup_custom_logger",
]


def setup_custom_logger(name: str) -> logging.Logger:
    """A stdlib logger at ``GRAPHAI_LOG_LEVEL`` (default INFO). graphai itself logs through
    structlog (``structlog.get_logger("graphai")``); this exists for code that imported it."""
    logger = logging.getLogger(name)
    level = os.getenv("GRAPHAI_LOG_LEVEL", "INFO").upper()
    logger.setLevel(getattr(logging, level, logging.INFO))
    return logger


logger: logging.Logger = setup_custom_logger("graphai.utils")
