"""Reports for people: the round's self-contained HTML page and its pictures."""

from __future__ import annotations

from service.report.builder import build_report

__all__ = ["build_report"]
