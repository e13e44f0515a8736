"""A body must arrive within a time limit (408), and a client that leaves half-way through its
body is a debug line in the log, not an application error with a traceback."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest
from conftest import PATIENCE_S
from factory import event, person
from server import Running, serve


def half_sent(srv: Running, path: str = "/api/v1/reads", role: str = "reader") -> socket.socket:
    """A request that declares 5000 bytes of body and sends 10."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=PATIENCE_S)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
        f"Authorization: Bearer {srv.tokens[role]}\r\n"
        "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    )
    sock.sendall(head.encode() + b'[{"reader"')
    return sock


def test_a_body_that_stops_arriving_is_answered_408(tmp_path: Path) -> None:
    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        srv.app.state.body_timeout_s = 1.0  # type: ignore[attr-defined]
        writes = [
            ("/api/v1/reads", "reader"),
            ("/api/v1/sightings", "marshal:half"),
            ("/api/v1/corrections", "timer"),
            ("/api/v1/races/mile/gun", "timer"),
        ]
        for path, role in writes:
            with half_sent(srv, path, role) as sock:
                began = time.monotonic()
                answer = sock.recv(4096)
                while b"}" not in answer.partition(b"\r\n\r\n")[2]:
                    more = sock.recv(4096)
                    if not more:
                        break
                    answer += more
                assert answer.startswith(b"HTTP/1.1 408"), (path, answer[:200])
                assert b"within" in answer
                assert time.monotonic() - began < PATIENCE_S / 2


def test_a_client_that_leaves_mid_body_is_a_debug_line_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        with half_sent(srv):
            time.sleep(0.3)
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            if any("went away" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.05)
        time.sleep(0.3)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    left = [r for r in caplog.records if "went away" in r.getMessage()]
    assert left and all(r.levelno == logging.DEBUG for r in left)


def test_a_body_that_is_not_one_json_object_is_answered_422_saying_so(tmp_path: Path) -> None:
    import httpx

    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        writes = [
            ("/api/v1/corrections", "timer"),
            ("/api/v1/status", "timer"),
            ("/api/v1/assign", "timer"),
            ("/api/v1/sweeps", "marshal:half"),
        ]
        with httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http:
            for path, role in writes:
                auth = {"Authorization": f"Bearer {srv.tokens[role]}"}
                for body in ([{"bib": "1"}], "text", 5):
                    r = http.post(path, json=body, headers=auth)
                    assert r.status_code == 422, (path, body, r.text)
                    assert r.json() == {"error": "body must be a JSON object"}, (path, body)
