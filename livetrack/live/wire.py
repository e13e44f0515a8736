"""The websocket wire: a text frame built once, and a direct write for uvicorn's connections.

A server's data frames are not masked, so the bytes of one text message are the same for every
client that negotiated the same thing: no extension, or permessage-deflate *without context
takeover* at the full window (each message compressed on its own, so one compressed message
suits every such client; see :mod:`livetrack.web.wsdeflate`). :func:`text_frame` and
:func:`deflate_frame` build those bytes once per message; :func:`direct_writer` returns a
callable that hands them straight to a connection's transport, skipping the per-send ASGI round
(message dict, state checks, frame serialisation, UTF-8 encoding and compression for each
client). It is used only where it is known to be equivalent to ``websocket.send``: uvicorn's
``websockets-sansio`` protocol, open, with no extension or with that one. Anything else gets
``None`` and the caller sends through ASGI. The writer (:class:`DirectWrite`) can also wait
until a backed-up connection takes writes again, so that a client that fell behind gets the
shared frame too, not a per-client ASGI send.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from starlette.websockets import WebSocket

#: Write one pre-built frame now; False when the connection cannot take it without waiting
#: (its write buffer is over the high-water mark, or it is closing) — send through ASGI then.
Write = Callable[[bytes], bool]

#: The kernel send buffer asked for each direct connection: small, so that a slow client's
#: backlog shows up where latest-wins can drop stale states instead of queueing in the kernel.
SNDBUF = 128 * 1024


def text_frame(payload: bytes, first: int = 0x81) -> bytes:
    """One unmasked, final, uncompressed text frame carrying ``payload`` (UTF-8); ``first``
    is the frame's first byte (FIN, RSV bits, opcode)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


#: How the shared compressed frames are made: raw deflate with the full window (what a client
#: accepts unless it asked for a smaller one), zlib's default level and memory.
DEFLATE_WBITS = 15
DEFLATE_LEVEL = 6


def deflate_frame(payload: bytes) -> bytes | None:
    """``payload`` as one compressed text frame (permessage-deflate, RFC 7692: RSV1 set, raw
    deflate ended by a sync flush without its last four bytes), compressed on its own as a
    server without context takeover must; None when that would not be smaller than the plain
    frame."""
    comp = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -DEFLATE_WBITS)
    data = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)
    data = data[:-4]  # 00 00 ff ff: the receiver adds it back
    if len(data) >= len(payload):
        return None
    return text_frame(data, 0xC1)


#: ASGI ``send`` wrappers known to pass ``websocket.send`` messages through unchanged
#: (Starlette's exception handling wraps ``send`` only to note when an HTTP response starts).
_PASS_THROUGH = {("starlette._exception_handler", "wrap_app_handling_exceptions.<locals>"
                  ".wrapped_app.<locals>.sender")}  # fmt: skip


def server_protocol(send: Any) -> Any:
    """The object whose bound method the ASGI ``send`` is, looking through the pass-through
    wrappers above (a closure's ``send`` free variable); ``None`` past any other wrapper."""
    for _ in range(16):
        owner = getattr(send, "__self__", None)
        if owner is not None:
            return owner
        code = getattr(send, "__code__", None)
        cells = getattr(send, "__closure__", None)
        key = (getattr(send, "__module__", None), getattr(send, "__qualname__", None))
        if code is None or cells is None or key not in _PASS_THROUGH:
            return None
        if "send" not in code.co_freevars:
            return None
        send = cells[code.co_freevars.index("send")].cell_contents
    return None


def direct_writer(ws: WebSocket, *, sndbuf: int | None = SNDBUF) -> DirectWrite | None:
    """A direct writer for ``ws`` (accepted already), or ``None`` when the server is not one
    this module knows to be safe to write to directly."""
    return attach(ws, sndbuf=sndbuf)[0]


def attach(ws: WebSocket, *, sndbuf: int | None = SNDBUF) -> tuple[DirectWrite | None, str]:
    """A direct writer for ``ws`` and "", or None and why it cannot have one."""
    proto: Any = server_protocol(getattr(ws, "_send", None))
    if proto is None:
        return None, "the ASGI send is not a known server's (a middleware wraps it?)"
    if not any(c.__name__ == _PROTOCOL for c in type(proto).__mro__):
        return None, f"the server's websocket protocol is {type(proto).__name__}, not {_PROTOCOL}"
    transport: Any = getattr(proto, "transport", None)
    conn: Any = getattr(proto, "conn", None)
    writable: Any = getattr(proto, "writable", None)
    if transport is None or conn is None or writable is None:
        return None, f"{_PROTOCOL} no longer has transport, conn and writable"
    if not proto.handshake_complete:
        return None, "the handshake is not complete"
    extensions = getattr(conn, "extensions", None) or []
    deflate = False
    if extensions:
        # only permessage-deflate with no context takeover on our side, at the window our
        # shared frames use: otherwise each connection's frames differ
        ext = extensions[0]
        if (
            len(extensions) != 1
            or getattr(ext, "name", "") != "permessage-deflate"
            or getattr(ext, "local_no_context_takeover", False) is not True
            or getattr(ext, "local_max_window_bits", 0) != DEFLATE_WBITS
        ):
            return None, "an extension other than shared-frame permessage-deflate was negotiated"
        deflate = True
    try:
        from websockets.protocol import State
    except ImportError:  # pragma: no cover
        return None, "websockets.protocol.State is missing"
    if conn.state is not State.OPEN:
        return None, "the connection is not open"
    if sndbuf:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    return DirectWrite(proto, transport, writable, deflate), ""


#: The uvicorn websocket protocol whose internals the direct write uses, and the attributes
#: of it (set in its methods) that it reads.
_PROTOCOL = "WebSocketsSansIOProtocol"
_ATTRIBUTES = ("transport", "conn", "writable", "handshake_complete", "close_sent")


def probe() -> str:
    """Whether the installed Starlette and uvicorn still have what :func:`direct_writer`
    relies on, checked without a connection (at start-up): "" when they do, else why not.
    (Each connection is checked again when it opens: :func:`attach`.)"""
    try:
        from starlette import _exception_handler
        from uvicorn.protocols.websockets import websockets_sansio_impl
        from websockets.protocol import State
    except ImportError as exc:
        return f"cannot import {exc.name}"
    if not hasattr(State, "OPEN"):
        return "websockets.protocol.State has no OPEN"
    wrappers = dict(_nested(_exception_handler.wrap_app_handling_exceptions.__code__))
    for module, qualname in _PASS_THROUGH:
        if module != _exception_handler.__name__ or "send" not in wrappers.get(qualname, ()):
            return f"Starlette's {qualname} no longer wraps send as this module expects"
    cls = getattr(websockets_sansio_impl, _PROTOCOL, None)
    if cls is None:
        return f"uvicorn has no {_PROTOCOL}"
    names: set[str] = set()
    for value in vars(cls).values():
        code = getattr(value, "__code__", None)
        if code is not None:
            names.update(name for _, name in _names(code))
    missing = [a for a in _ATTRIBUTES if a not in names]
    return f"uvicorn's {_PROTOCOL} has no {', '.join(missing)}" if missing else ""


def _nested(code: Any) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(qualified name, free variables) of every function defined inside ``code``."""
    for const in code.co_consts:
        if hasattr(const, "co_qualname"):
            yield const.co_qualname, const.co_freevars
            yield from _nested(const)


def _names(code: Any) -> Iterator[tuple[Any, str]]:
    """The attribute and global names ``code`` (and the functions inside it) use."""
    for name in code.co_names:
        yield code, name
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            yield from _names(const)


class DirectWrite:
    """A :data:`Write` for one uvicorn ``websockets-sansio`` connection, and :meth:`ready`,
    which waits until the connection takes writes again (the transport has drained below its
    low-water mark, or the connection is lost: then the write refuses and ``send`` raises).
    ``deflate``: the connection takes the shared compressed frames."""

    __slots__ = ("_proto", "_transport", "_writable", "deflate")

    def __init__(self, proto: Any, transport: Any, writable: Any, deflate: bool = False) -> None:
        self.deflate = deflate
        self._proto = proto
        self._transport = transport
        self._writable = writable

    def __call__(self, frame: bytes) -> bool:
        # Runs once per client per tick: the cheapest checks first. The websocket's own state
        # is not read (a property): it leaves OPEN only when we sent a close (``close_sent``),
        # or when a close arrived or the connection failed, and then uvicorn closes the
        # transport in the same callback, before any other code runs.
        if self._proto.close_sent or self._transport.is_closing() or not self._writable.is_set():
            return False
        self._transport.write(frame)
        return True

    async def ready(self) -> None:
        await self._writable.wait()
