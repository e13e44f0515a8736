"""The checks every section of ``EVENT.toml`` is read with: a key that is required, of the
right type, an id, a list of tables, no unknown keys. Each raises :class:`ConfigError` naming
the key that is wrong (``race[1].course``) and saying why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from livetrack.domain.model import ConfigError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def req(data: Mapping[str, Any], key: str, path: str) -> Any:
    """The value at ``key``, which must be there."""
    if key not in data:
        raise ConfigError(f"{path}.{key}" if path else key, "is required")
    return data[key]


def string(data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    """The string at ``key`` (``default`` when it is absent, if given)."""
    where = f"{path}.{key}" if path else key
    value = data.get(key, default) if default is not None else req(data, key, path)
    if not isinstance(value, str):
        raise ConfigError(where, f"must be a string, not {type(value).__name__}")
    return value


def identifier(data: Mapping[str, Any], key: str, path: str) -> str:
    """The id at ``key``: letters, digits, ``-`` and ``_``, at most 40."""
    value = string(data, key, path)
    if not _ID.match(value):
        raise ConfigError(
            f"{path}.{key}", f"{value!r} is not an id (letters, digits, '-', '_', at most 40)"
        )
    return value


def num(data: Mapping[str, Any], key: str, path: str, default: float | None = None) -> float:
    """The number at ``key`` as a float (``default`` when it is absent, if given)."""
    where = f"{path}.{key}" if path else key
    value = data.get(key, default) if default is not None else req(data, key, path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(where, f"must be a number, not {type(value).__name__}")
    return float(value)


def table_list(data: Mapping[str, Any], key: str, path: str = "") -> list[Mapping[str, Any]]:
    """The list of tables at ``key`` (``[[key]]``), empty when it is absent."""
    value = data.get(key, [])
    where = f"{path}.{key}" if path else key
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(where, "must be a list of tables ([[" + key + "]])")
    return value


def check_keys(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    """Refuse a key of ``data`` that is not in ``allowed``."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(where, f"unknown key (expected one of: {', '.join(sorted(allowed))})")
