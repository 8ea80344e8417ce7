"""Protocols and the study runner (spec section 5)."""

from shiftbench.protocols.config import (
    Protocol,
    StudyConfig,
    load_config,
    protocol_table,
    resolve_protocols,
)

__all__ = ["Protocol", "StudyConfig", "load_config", "protocol_table", "resolve_protocols"]
