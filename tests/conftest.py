"""Shared fixtures: real services on free ports, and skip-or-fail for what a machine lacks.

Outside CI a test that needs Redis or a browser the machine does not have is skipped with a
reason; under ``CI=true`` nothing may skip, so the same absence fails the test instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LIVETRACK_DATA", REPO.parent / "shared" / "data"))

#: How long a test waits for something that should happen at once on an idle machine (a
#: server starting, a record being folded, a page updating) before it fails. CI runs on two
#: possibly busy cores, so this is generous: waits poll for their condition and return as soon
#: as it holds, so only a failing test ever waits this long.
PATIENCE_S = 30.0


#: The whole suite (``pytest`` with no paths) runs on this many worker processes (pytest-xdist),
#: each test file whole on one worker, so a file's tests still run one after another; a file or
#: test named on the command line runs in this one process, and ``-n 0`` always does.
WORKERS = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    opt = config.option
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if (
        whole_suite
        and getattr(opt, "numprocesses", 0) is None  # xdist is there and -n was not given
        and not hasattr(config, "workerinput")  # not inside a worker
        and not opt.collectonly
        and not opt.usepdb
    ):
        opt.numprocesses = WORKERS
        if opt.dist == "no":
            opt.dist = "loadfile"


def unavailable(reason: str) -> None:
    """Skip (locally) or fail (in CI) because something the test needs is missing."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may skip)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def refused_port() -> Iterator[socket.socket]:
    """A port on which every connection is refused while the block lasts: the socket is bound
    but never listens, so nothing else can take the port meanwhile (a port from
    :func:`free_port` could be taken by anyone once it is released). ``SO_REUSEADDR`` lets a
    server of the test's own bind the same port later, while the block still holds it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        yield s


def wait_for_port(
    port: int, timeout: float = PATIENCE_S, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something listens on ``port``; with ``proc``, fail at once if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise OSError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """A ``redis-server`` of the test's own, on a free port, with AOF in a temporary folder."""

    def __init__(self, workdir: Path, port: int | None = None, args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.pinned = port is not None  # a port given (or once used) is kept on restarts
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart, on the same port) and wait until this very process answers.

        The first start may find its free port taken meanwhile by someone else: it then tries
        another. A restart keeps its port (clients and the test know it) and retries it."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server is not on PATH")
        deadline = time.monotonic() + PATIENCE_S
        while True:
            self.proc = subprocess.Popen(
                [
                    exe, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", str(self.workdir), "--appendonly", "yes", "--appendfsync", "always",
                    "--save", "", "--daemonize", "no", "--logfile", str(self.workdir / "redis.log"),
                    *self.args,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                wait_for_port(self.port, max(1.0, deadline - time.monotonic()), self.proc)
                if self._answers():
                    self.pinned = True
                    return
            except OSError:
                pass
            self.kill()
            if time.monotonic() > deadline:
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise TimeoutError(f"redis-server did not start on port {self.port}: {log}")
            if not self.pinned:
                self.port = free_port()
            time.sleep(0.1)

    def _answers(self) -> bool:
        """Whether the redis-server answering on the port is ours (not another process that
        took the port first): its INFO names our process id."""
        assert self.proc is not None
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(b"INFO server\r\n")
                    reply = b""
                    while chunk := s.recv(65536):
                        reply += chunk
                        done = reply.startswith(b"-") or b"process_id:" in reply
                        if done and reply.endswith(b"\r\n"):
                            break
                if f"process_id:{self.proc.pid}\r\n".encode() in reply:
                    return True
                if not reply.startswith(b"-LOADING"):
                    return False
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL, like a crash: only what AOF fsynced survives."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server per test (for tests that kill or restart it)."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``REDIS_URL`` when given, else a redis-server started for this test session."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed and REDIS_URL is not set")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def chromium_path() -> str | None:
    given = os.environ.get("LIVETRACK_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        unavailable("no Chromium (set LIVETRACK_CHROMIUM or apt-get install chromium)")
    assert path is not None
    return path


#: A small sample of real results, kept with the tests (see data/README.md).
SAMPLES = Path(__file__).resolve().parent / "data"


def full_data(*files: str) -> Path:
    """The folder holding the full real results ``files`` (``LIVETRACK_DATA``, else
    ../shared/data). They are not part of the project: tests that need them are marked
    ``fulldata`` and run only when asked (``pytest -m fulldata``); without the files they skip
    saying why (fail under CI=true)."""
    missing = [f for f in files if not (DATA / f).exists()]
    if missing:
        unavailable(f"race results {missing} not found in {DATA} (set LIVETRACK_DATA)")
    return DATA


pytest_plugins = ["browser"]


# -- every EventLog backend (see test_eventlog_contract.py) ----------------------------------

Opener = Callable[[], Any]
Cleanup = Callable[[], Awaitable[None]]


async def _no_cleanup() -> None:
    return None


def _sqlite(request: pytest.FixtureRequest) -> tuple[Opener, Cleanup]:
    from livetrack.store.sqlite import SqliteEventLog

    path: Path = request.getfixturevalue("tmp_path") / "events.db"
    return (lambda: SqliteEventLog(path)), _no_cleanup


def _redis(request: pytest.FixtureRequest) -> tuple[Opener, Cleanup]:
    from redis.asyncio import Redis

    from livetrack.store.redis import RedisEventLog

    base: str = request.getfixturevalue("redis_url")
    stream = f"livetrack:test:{uuid.uuid4().hex}"
    sep = "&" if "?" in base else "?"

    async def cleanup() -> None:
        client = Redis.from_url(base)
        try:
            keys = [k async for k in client.scan_iter(match=f"{stream}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    return (lambda: RedisEventLog.from_url(f"{base}{sep}stream={stream}")), cleanup


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], tuple[Opener, Cleanup]]] = {
    "sqlite": _sqlite,
    "redis": _redis,
}


@pytest.fixture(params=sorted(BACKENDS))
async def open_log(request: pytest.FixtureRequest) -> AsyncIterator[Opener]:
    """Opens logs on one fresh storage; every log it opened is closed after the test."""
    opener, cleanup = BACKENDS[request.param](request)
    opened: list[Any] = []

    def open_one() -> Any:
        log = opener()
        opened.append(log)
        return log

    try:
        yield open_one
    finally:
        for log in opened:
            await log.close()
        await cleanup()
