"""The desktop's notification server, on a private D-Bus session bus: where Chromium on
Linux sends its notifications, and from where a user's click on one comes back.

Chromium on Linux shows a notification (a page's `new Notification(...)` or a service
worker's `registration.showNotification(...)`) by calling ``Notify`` on the session
bus's ``org.freedesktop.Notifications`` when some program owns that name (the Desktop
Notifications Specification, 1.2); a click on it is the server's ``ActionInvoked``
signal with the ``default`` action, which Chromium turns into the page's ``click`` event
or the service worker's ``notificationclick``, as the browser's own code, with the user
activation a click gives (so ``clients.openWindow`` and ``client.focus`` are allowed).

`NotificationServer` is that program: a private ``dbus-daemon`` (Debian's
``dbus-daemon`` package) and a thread that owns the name through jeepney (a pure-Python
D-Bus library), keeps what Chromium shows, and clicks it as a user's desktop would. Give
the browser ``DBUS_SESSION_BUS_ADDRESS`` = `address`. Nothing of fastim takes part.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

SAFETY = 10.0  # a safety net only: no test asserts on time
NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


@dataclass(frozen=True)
class Shown:
    """One notification as Chromium handed it to the desktop (``Notify``'s arguments)."""

    id: int
    summary: str  # the notification's title
    body: str  # Chromium puts the origin first, then a blank line, then the body
    actions: tuple[str, ...]


def require_dbus() -> None:
    """Fail in CI, skip elsewhere, when dbus-daemon or jeepney is missing."""
    missing = []
    if shutil.which("dbus-daemon") is None:
        missing.append("dbus-daemon (apt-get install dbus-daemon)")
    try:
        import jeepney  # noqa: F401
    except ImportError:
        missing.append("jeepney (pip install -e .[test])")
    if not missing:
        return
    reason = "the desktop notification tests need " + " and ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip")
    pytest.skip(reason)


class NotificationServer:
    """``org.freedesktop.Notifications`` on a bus of its own; `close` ends both."""

    def __init__(self) -> None:
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        self._dir = tempfile.mkdtemp(prefix="fastim-dbus-")
        self.address = f"unix:path={self._dir}/bus"
        self._daemon = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={self.address}",
             "--print-address=1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert self._daemon.stdout is not None
            self._daemon.stdout.readline()  # printed once it listens
            self._conn = open_dbus_connection(bus=self.address)
            reply = self._conn.send_and_get_reply(message_bus.RequestName(NAME),
                                                  timeout=SAFETY)
            assert reply.body == (1,), f"could not own {NAME}: {reply.body}"  # 1: primary owner
        except BaseException:
            self._daemon.kill()  # no bus left behind
            self._daemon.wait(SAFETY)
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self.shown: dict[int, Shown] = {}
        self.closed: list[int] = []
        self._next = 1
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        from jeepney import HeaderFields, MessageType, new_error, new_method_return

        while True:
            try:
                msg = self._conn.receive()
            except Exception:  # the connection closed: the server is done
                return
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            if member == "GetCapabilities":
                # "actions": Chromium then offers the "default" action, which is the click.
                reply = new_method_return(msg, "as", (["actions", "body"],))
            elif member == "GetServerInformation":
                reply = new_method_return(msg, "ssss", ("fastim-tests", "fastim", "1", "1.2"))
            elif member == "Notify":
                _app, replaces, _icon, summary, body, actions, _hints, _timeout = msg.body
                with self._changed:
                    ident = replaces or self._next
                    self._next += 1 if not replaces else 0
                    self.shown[ident] = Shown(ident, summary, body, tuple(actions[::2]))
                    self._changed.notify_all()
                reply = new_method_return(msg, "u", (ident,))
            elif member == "CloseNotification":
                with self._changed:
                    if self.shown.pop(msg.body[0], None) is not None:
                        self.closed.append(msg.body[0])
                    self._changed.notify_all()
                reply = new_method_return(msg)
            else:
                reply = new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod")
            self._conn.send(reply)

    def wait_for(self, summary: str) -> Shown:
        """The notification titled `summary`, once Chromium has shown it."""
        deadline = time.monotonic() + SAFETY
        with self._changed:
            while True:
                for shown in self.shown.values():
                    if shown.summary == summary:
                        return shown
                left = deadline - time.monotonic()
                assert left > 0, f"no notification {summary!r}; shown: {list(self.shown.values())}"
                self._changed.wait(left)

    def click(self, shown: Shown) -> None:
        """What the desktop does when the user clicks the notification (Desktop
        Notifications Specification, "ActionInvoked" with the "default" action), until
        Chromium has taken the click: it closes a notification that was clicked.
        Chromium learns a notification's id from ``Notify``'s reply a moment after the
        desktop sent it, and drops a click on an id it does not know yet (no person clicks
        that fast), so the click is sent again every 0.25 s until then."""
        from jeepney import DBusAddress, new_signal

        assert "default" in shown.actions, shown
        signal = new_signal(DBusAddress(PATH, interface=NAME), "ActionInvoked", "us",
                            (shown.id, "default"))
        deadline = time.monotonic() + SAFETY
        with self._changed:
            while shown.id not in self.closed:
                self._conn.send(signal)
                left = deadline - time.monotonic()
                assert left > 0, f"Chromium never took the click on {shown}"
                self._changed.wait(min(left, 0.25))

    def browser_env(self) -> dict[str, Any]:
        """The environment to launch Chromium with."""
        return {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def close(self) -> None:
        self._conn.close()
        self._daemon.terminate()
        self._daemon.wait(SAFETY)
        shutil.rmtree(self._dir, ignore_errors=True)
