"""Shared benchmark plumbing: ratios measured in the run, printed at the end.

pytest-benchmark's own table gives absolute timings; the ratios between an
implementation and its references are what the targets are stated in, and
they only mean something when measured side by side in the same run (the
machine is shared and noisy), so each group records them here.
"""

from __future__ import annotations

import pytest

_RATIO_LINES: list[str] = []


@pytest.fixture(scope="session")
def ratio_report() -> list[str]:
    """Append one human-readable line per measured ratio."""
    return _RATIO_LINES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _RATIO_LINES:
        terminalreporter.section("speed ratios measured in this run")
        for line in _RATIO_LINES:
            terminalreporter.write_line(line)
