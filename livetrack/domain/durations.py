"""Durations written as clock times: ``H:MM:SS``, ``M:SS`` or seconds, the one parser and the one
formatter for them (event configuration, results files, published results)."""

from __future__ import annotations

import math


def parse_hms(text: str, *, signed: bool = False) -> float:
    """Seconds from ``H:MM:SS``, ``M:SS`` or ``SS`` (each part may have a decimal fraction;
    with ``signed``, a leading ``-`` too). Raises ``ValueError`` saying what is wrong."""
    s = text.strip()
    sign = 1.0
    if signed and s.startswith("-"):
        sign, s = -1.0, s[1:]
    parts = s.split(":")
    try:
        values = [float(p) if p[:1].isdigit() else math.nan for p in parts]
    except ValueError:
        values = []
    if not 1 <= len(values) <= 3 or any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"{text!r} is not a duration like '6:58' or '1:02:03'")
    seconds = 0.0
    for v in values:
        seconds = seconds * 60 + v
    return sign * seconds


def fmt_hms(ms: int | None) -> str:
    """``0:06:58`` (whole seconds, always with hours, so spreadsheets read it as a time)."""
    if ms is None:
        return ""
    sign = "-" if ms < 0 else ""
    s = abs(ms) // 1000
    return f"{sign}{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
