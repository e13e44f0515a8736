"""A stand-in desktop notification server, so a test can tap a notification Chromium shows.

Chromium on Linux shows a web page's or service worker's notifications through the desktop's
notification server (``org.freedesktop.Notifications`` on the session D-Bus) when one is
there, and turns that server's ``ActionInvoked`` signal into a real, trusted
``notificationclick`` in the service worker: the only way a test can tap a notification, since
a ``notificationclick`` a script makes is not allowed to open or focus a window.

:class:`NotificationServer` starts a private ``dbus-daemon`` (a session bus of its own, nothing
of the machine's), owns the name on it, answers Chromium's calls, keeps what it was asked to
show (:attr:`shown`) and taps a notification on request (:meth:`click`). Launch Chromium with
``env=server.env`` so that it finds this bus.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from conftest import unavailable

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


@dataclass(frozen=True)
class Shown:
    """One notification Chromium asked the desktop to show."""

    id: int
    title: str
    body: str
    actions: tuple[str, ...]


class NotificationServer:
    def __init__(self) -> None:
        if shutil.which("dbus-daemon") is None:
            unavailable("no dbus-daemon (apt-get install dbus-daemon)")
        try:
            import jeepney  # noqa: F401
        except ImportError:
            unavailable("jeepney is not installed (pip install -e '.[test]')")
        self.shown: list[Shown] = []
        self.closed: list[int] = []
        self._lock = threading.Lock()
        self._dir = tempfile.mkdtemp(prefix="lt-bus-")
        self._daemon: subprocess.Popen[str] | None = None
        self._conn: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> NotificationServer:
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        self._daemon = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1",
             f"--address=unix:path={self._dir}/bus"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self._daemon.stdout is not None
        self.address = self._daemon.stdout.readline().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon did not start")
        self._conn = open_dbus_connection(bus=self.address)
        reply = self._conn.send_and_get_reply(message_bus.RequestName(NAME), timeout=10)
        if reply.body != (1,):  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
            raise RuntimeError(f"could not own {NAME}: {reply.body}")
        self._thread = threading.Thread(target=self._serve, name="notifications", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._daemon is not None:
            self._daemon.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._daemon.wait(5)
            if self._daemon.stdout is not None:
                self._daemon.stdout.close()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        if self._thread is not None:
            self._thread.join(5)
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        """The environment to launch Chromium with: this bus as its session bus."""
        return {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def click(self, shown: Shown) -> None:
        """Tap ``shown`` (its default action, as a click on its body does)."""
        from jeepney import DBusAddress, new_signal

        emitter = DBusAddress(PATH, interface=NAME)
        self._conn.send(new_signal(emitter, "ActionInvoked", "us", (shown.id, "default")))

    def _serve(self) -> None:
        from jeepney import HeaderFields, MessageType, new_method_return

        while True:
            try:
                msg = self._conn.receive()
            except Exception:
                return  # the bus went away: the test is over
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(HeaderFields.member)
            if member == "GetCapabilities":
                reply = new_method_return(msg, "as", (["actions", "body"],))
            elif member == "GetServerInformation":
                reply = new_method_return(msg, "ssss", ("stand-in", "livetrack tests", "1", "1.2"))
            elif member == "Notify":
                _app, replaces, _icon, title, body, actions, _hints, _timeout = msg.body
                with self._lock:
                    nid = replaces or len(self.shown) + 1
                    self.shown.append(Shown(nid, title, body, tuple(actions[::2])))
                reply = new_method_return(msg, "u", (nid,))
            elif member == "CloseNotification":
                with self._lock:
                    self.closed.append(msg.body[0])
                reply = new_method_return(msg, "", ())
            else:
                reply = new_method_return(msg, "", ())
            with contextlib.suppress(Exception):
                self._conn.send(reply)
