"""A child process that cannot outlive us: own session, parent-death signal, log file."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import signal
import socket
import subprocess  # noqa: S404 - starting the embedded servers is this module's job
from collections.abc import Awaitable, Callable
from pathlib import Path

from quanticity.errors import PortInUseError, RuntimeStartError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    # Linux: the kernel sends SIGTERM to the child when its parent thread dies, even by
    # SIGKILL, so an embedded server never outlives the CLI that started it.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def check_port_free(service: str, port: int, setting: str, host: str = "127.0.0.1") -> None:
    """Raise ``PortInUseError`` when ``host:port`` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR, as the servers themselves use: connections of a killed server still in
        # TIME_WAIT do not block a restart; only a live listener makes the bind fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(service, port, setting) from None
            raise


def free_loopback_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log file (for error messages)."""
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ChildProcess:
    """One embedded server process.

    Args:
        name: service name for logs and errors (``broker``, ``redis``).
        argv: the command.
        log_path: stdout and stderr go here (appended).
        env: extra environment for this child only.
    """

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Spawn the process.

        Raises:
            RuntimeStartError: the binary is missing or not executable.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        try:
            # own session: a Ctrl-C on the terminal reaches us, and we stop children in order
            self.proc = subprocess.Popen(  # noqa: S603 - argv is built from installed binaries
                self.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        except OSError as exc:
            raise RuntimeStartError(self.name, f"cannot execute {self.argv[0]}: {exc.strerror}") from exc
        finally:
            log_file.close()

    async def wait_healthy(self, probe: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
        """Poll ``probe`` until it returns True.

        Raises:
            RuntimeStartError: the process exited, or ``timeout_s`` passed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise RuntimeStartError(
                    self.name, f"exited with code {code}: {tail(self.log_path)}", log_file=self.log_path
                )
            if await probe():
                return
            if loop.time() > deadline:
                self.stop()
                raise RuntimeStartError(
                    self.name, f"not healthy after {timeout_s:.0f} s: {tail(self.log_path)}", log_file=self.log_path
                )
            await asyncio.sleep(0.1)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode
