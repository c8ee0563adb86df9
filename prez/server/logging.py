"""Redis-style log lines: `pid: dd Mon HH:MM:SS.mmm <mark> message`.

Marks as Redis: '.' debug, '-' verbose, '*' notice, '#' warning. The
original Prez wrote exactly this shape (`33503: 22 Jan 23:54:15.763 .
Sending heartbeat ...`), and operators grep for it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

DEBUG, VERBOSE, NOTICE, WARNING, NOTHING = range(5)
LEVELS = {
    "debug": DEBUG,
    "verbose": VERBOSE,
    "notice": NOTICE,
    "warning": WARNING,
    "nothing": NOTHING,
}
MARKS = ".-*#"


class Logger:
    __slots__ = ("level", "stream", "pid", "path")

    def __init__(self, level: str = "notice", path: str = "") -> None:
        self.level = LEVELS[level]
        self.path = path
        self.pid = os.getpid()
        self.stream: TextIO = (
            open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
            if path
            else sys.stdout
        )

    def set_level(self, level: str) -> None:
        self.level = LEVELS[level]

    def log(self, level: int, message: str) -> None:
        if level < self.level:
            return
        now = time.time()
        stamp = time.strftime("%d %b %H:%M:%S", time.localtime(now))
        millis = int(now * 1000) % 1000
        try:
            self.stream.write(
                f"{self.pid}: {stamp}.{millis:03d} {MARKS[level]} {message}\n"
            )
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full log must never take the server down

    def debug(self, message: str) -> None:
        if self.level <= DEBUG:
            self.log(DEBUG, message)

    def verbose(self, message: str) -> None:
        if self.level <= VERBOSE:
            self.log(VERBOSE, message)

    def notice(self, message: str) -> None:
        self.log(NOTICE, message)

    def warning(self, message: str) -> None:
        self.log(WARNING, message)


log = Logger()


def configure(level: str, path: str) -> None:
    global log
    new = Logger(level, path)
    log.level, log.stream, log.path, log.pid = new.level, new.stream, new.path, new.pid
