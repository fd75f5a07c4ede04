"""A private MariaDB server for the fault tests: started by the test, stopped, paused and
started again on the same data directory and port.

The machine's own MariaDB (127.0.0.1:3306) is shared by every test and every helper, so a
test that takes the database away starts its own ``mariadbd`` instead: a data directory
in the test's temporary folder (a copy of one ``mariadb-install-db`` made once per test
process), a free loopback port, its
own socket and pid file, no option files (``--no-defaults``), and small InnoDB buffers so
that it starts in well under a second. Root has an empty password (``normal`` root
authentication), as on the project's machines.

On the project's machines and in CI a test that needs a server fails when CI is set and the server cannot be had
(here: ``mariadbd`` is not installed); elsewhere it skips with the reason.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
import pytest

STARTUP = 30.0  # a safety net for a start on a loaded machine; never asserted on

# Small, and durable: an acked message must survive a stop (InnoDB flushes its log at
# every commit, innodb_flush_log_at_trx_commit=1, the default, kept on purpose).
SERVER_OPTIONS = (
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=4M",
    "--performance-schema=OFF",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--innodb-use-native-aio=0",  # some container kernels refuse io_setup
)


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        reason = f"{name} is not installed (Debian: apt-get install mariadb-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip")
        pytest.skip(reason)
    return path


_installed: Path | None = None


def installed_datadir() -> Path:
    """A data directory fresh from `mariadb-install-db`, made once per test process and
    never started: each server copies it (a tenth of a second) instead of running the
    install (2 to 3 s on the shared machine), and every copy starts the same as a fresh
    install."""
    global _installed
    if _installed is None:
        folder = Path(tempfile.mkdtemp(prefix="fastim-mdb-install-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        datadir = folder / "data"
        install = _binary("mariadb-install-db")
        result = subprocess.run(
            [install, "--no-defaults", f"--datadir={datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             *SERVER_OPTIONS[:2]],
            capture_output=True, stdin=subprocess.DEVNULL, timeout=STARTUP, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{result.stdout.decode()}"
                               f"\n{result.stderr.decode()}")
        _installed = datadir
    return _installed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MariaDBServer:
    """One ``mariadbd`` process owned by a test. `start`, `stop` (SIGTERM, a clean
    shutdown), `kill` (SIGKILL), `pause` (SIGSTOP: the server hangs, connections stay
    open and unanswered) and `resume` (SIGCONT). It keeps its port across restarts, so a
    client's URL stays valid."""

    def __init__(self, directory: Path, options: tuple[str, ...] = ()) -> None:
        self.directory = directory
        #: More server options, after SERVER_OPTIONS.
        self.options = options
        self.datadir = directory / "data"
        # A Unix socket path must fit in 108 bytes: pytest's temporary folders can be
        # longer, so the socket (which mariadbd always opens) lives in a short folder.
        self._run_dir = Path(tempfile.mkdtemp(prefix="fastim-mdb-"))
        self.socket = self._run_dir / "mysqld.sock"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "mariadbd.log"
        #: Seconds each start took until the server answered a query (measured, for the
        #: docs; no test asserts on it).
        self.start_times: list[float] = []

    def url(self, database: str) -> str:
        return f"mysql://root:@127.0.0.1:{self.port}/{database}"

    def install(self) -> MariaDBServer:
        """Make the data directory (the system tables): a copy of the one
        `mariadb-install-db` made for this test process (`installed_datadir`)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.copytree(installed_datadir(), self.datadir)
        return self

    def start(self) -> MariaDBServer:
        """Start on the data directory and wait until a query is answered."""
        assert self.process is None or self.process.poll() is not None, "already running"
        binary = _binary("mariadbd")
        began = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [binary, "--no-defaults", f"--datadir={self.datadir}",
                 f"--socket={self.socket}", f"--pid-file={self._run_dir / 'mysqld.pid'}",
                 f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root",
                 *SERVER_OPTIONS, *self.options],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() - began > STARTUP:
                self.kill()
                raise RuntimeError(f"mariadbd did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        self.start_times.append(time.monotonic() - began)
        return self

    def _answers(self) -> bool:
        try:
            conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="",
                                   connect_timeout=1, read_timeout=2)
        except pymysql.err.Error:
            return False
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except pymysql.err.Error:
            return False
        finally:
            conn.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM: mariadbd closes its clients' connections and shuts down cleanly."""
        self._signal_and_wait(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: gone at once; InnoDB recovers from its log at the next start."""
        self._signal_and_wait(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the server hangs. The kernel still accepts TCP connections to its
        port and keeps the open ones, but nothing answers: the hardest kind of outage
        for a client, which only its own timeouts end."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _signal_and_wait(self, sig: signal.Signals) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.send_signal(sig)
        try:
            process.wait(STARTUP)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STARTUP)

    def close(self) -> None:
        """Kill the server (if running) and remove its short socket folder."""
        self.kill()
        shutil.rmtree(self._run_dir, ignore_errors=True)


def mariadb_server(directory: Path, options: tuple[str, ...] = ()) -> MariaDBServer:
    """A private server, installed and started (the caller closes it)."""
    server = MariaDBServer(directory, options).install()
    try:
        return server.start()
    except BaseException:
        server.close()
        raise
