"""Running axrun on a pseudo-terminal and seeing what the terminal shows: its output
played through a terminal emulator (pyte). Used by the terminal tests and by
``docs/make_images.py`` (the README's terminal picture)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte


def read_until_closed(fd: int) -> bytes:
    """Everything written to a pty's other side until its last writer closes it."""
    output = bytearray()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the pty closed: the process ended
            break
        if not chunk:
            break
        output += chunk
    os.close(fd)
    return bytes(output)


def run_on_terminal(args: list[str], cwd: Path, columns: int, lines: int) -> \
        tuple[int, pyte.HistoryScreen]:
    """Run ``python -m axrun ARGS`` with stdout and stderr on one pty of ``columns``
    × ``lines``; its exit status and the screen it leaves (scrolled-off lines in its
    history)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "LINES": str(lines),
           "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "axrun", *args], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, cwd=cwd, env=env)
    os.close(follower)
    output = read_until_closed(leader)
    code = proc.wait(timeout=90)
    screen = pyte.HistoryScreen(columns, lines, history=10_000)
    pyte.ByteStream(screen).feed(output.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))
    return code, screen


def screen_lines(screen: pyte.HistoryScreen) -> list[str]:
    """Every line the terminal showed, history first, trailing blanks cut."""
    rows = [*screen.history.top, *(screen.buffer[y] for y in range(screen.lines))]
    lines = ["".join(row[x].data for x in range(screen.columns)).rstrip() for row in rows]
    while lines and not lines[-1]:
        lines.pop()
    return lines
