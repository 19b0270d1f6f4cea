"""Start and stop the embedded MongoDB-protocol store (SecantusDB) as a separate process.

SecantusDB is GPL-2.0, so it is only ever run as its own process (`secantusd-py`) and spoken to over the
MongoDB wire protocol; nothing in `fhir_server` imports it. Its data lives under a directory of ours, so a
restart finds the data again.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAEMON = "secantusd-py"


class EmbeddedStoreError(RuntimeError):
    """The embedded store could not be found or did not come up."""


def _daemon_path() -> str:
    beside = Path(sys.executable).with_name(DAEMON)
    if beside.exists():
        return str(beside)
    found = shutil.which(DAEMON)
    if not found:
        raise EmbeddedStoreError(
            f"{DAEMON} not found: install the embedded store with `pip install 'SecantusDB>=0.7.0b3'` "
            "or set FHIR_MONGODB_URI to a MongoDB server"
        )
    return found


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class EmbeddedStore:
    """A running `secantusd-py` process; `uri` is what PyMongo connects to."""

    process: subprocess.Popen[bytes]
    port: int
    storage: Path

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the store cleanly (SIGTERM lets WiredTiger checkpoint); kill it if it will not go."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def _spawn(cmd: list[str], output: Any) -> subprocess.Popen[bytes]:
    # A fresh session, so a Ctrl-C meant for the server does not kill the store before we stop it.
    return subprocess.Popen(cmd, stdout=output, stderr=output, stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def start(storage: Path, port: int | None = None, log_file: Path | None = None, timeout: float = 30.0) -> EmbeddedStore:
    """Start the store with its data in `storage` (`:memory:` for a throw-away one) and wait until it listens."""
    port = port or free_port()
    if _port_open(port):
        raise EmbeddedStoreError(f"port {port} is already in use; set FHIR_EMBEDDED_PORT to another port")
    if str(storage) != ":memory:":
        storage.mkdir(parents=True, exist_ok=True)
    cmd = [_daemon_path(), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage),
           "--log-level", "WARNING"]
    if log_file:
        with open(log_file, "ab") as log_target:  # the child keeps its own copy of the descriptor
            process = _spawn(cmd, log_target)
    else:
        process = _spawn(cmd, subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedStoreError(f"{DAEMON} exited with status {process.returncode}; see {log_file or 'its log'}")
        if _port_open(port):
            return EmbeddedStore(process, port, storage)
        time.sleep(0.05)
    process.kill()
    raise EmbeddedStoreError(f"{DAEMON} did not listen on port {port} within {timeout:.0f} s")
