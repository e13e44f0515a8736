"""A stand-in Web Push service over real HTTP on 127.0.0.1, strict like the real ones.

Each endpoint it hands out (:meth:`PushService.subscribe`) belongs to a browser-like key pair
made here (a real P-256 ECDH key and a 16-byte auth secret). A message posted to an endpoint
is accepted (201) only when:

- its ``Authorization: vapid t=<JWT>, k=<key>`` header carries an ES256 JWT whose signature
  verifies with ``k``, ``k`` is the application server key the subscription was made with,
  ``aud`` is this service's origin, ``exp`` is in the future and at most 24 h away, and
  ``sub`` is a ``mailto:`` or ``https:`` URL (RFC 8292);
- it has a ``TTL`` header, and its body is ``Content-Encoding: aes128gcm`` that decrypts with
  the subscription's private key and auth secret (RFC 8291, RFC 8188; :func:`decrypt_aes128gcm`
  is written from the RFCs, not with the library the server encrypts with).

Otherwise it answers 400/401/403 and keeps the reason in :attr:`PushService.rejected`.
It speaks HTTP/1.1 and keeps connections open, as push services do (:attr:`connections`
counts those opened). ``script(endpoint, [429, 503])`` makes the next answers to an endpoint
those statuses (``Retry-After: 0`` on a 429); ``gone(endpoint)`` makes it answer 410 for good.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """What a browser keeps for one subscription: its private key and auth secret."""

    endpoint: str
    server_key: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    @property
    def p256dh(self) -> str:
        return b64url(
            self.key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def json(self) -> dict[str, Any]:
        """The subscription as ``PushSubscription.toJSON()`` gives it."""
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }


@dataclass
class Delivered:
    endpoint: str
    payload: dict[str, Any]
    at: float
    ttl: int
    claims: dict[str, Any]


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def decrypt_aes128gcm(body: bytes, ua_key: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """RFC 8291 over RFC 8188, written from the RFCs with ``cryptography``'s primitives only
    (independent of the ``http_ece`` the server encrypts with); raises ``ValueError``."""
    if len(body) < 21:
        raise ValueError("shorter than the aes128gcm header")
    salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    as_public = body[21 : 21 + idlen]
    if idlen != 65 or rs < 18:
        raise ValueError(f"keyid of {idlen} bytes (want the sender's 65-byte key), rs {rs}")
    ua_public = ua_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    ecdh = ua_key.exchange(ec.ECDH(), peer)
    prk_key = _hmac(auth, ecdh)
    ikm = _hmac(prk_key, b"WebPush: info\x00" + ua_public + as_public + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    data = body[21 + idlen :]
    records = [data[i : i + rs] for i in range(0, len(data), rs)]
    out = b""
    for seq, record in enumerate(records):
        iv = (int.from_bytes(nonce, "big") ^ seq).to_bytes(12, "big")
        try:
            plain = AESGCM(cek).decrypt(iv, record, None)
        except InvalidTag:
            raise ValueError(f"record {seq} does not authenticate") from None
        end = len(plain.rstrip(b"\x00"))
        last = seq == len(records) - 1
        if end == 0 or plain[end - 1] != (2 if last else 1):
            raise ValueError(f"record {seq} has no {'final' if last else ''} padding delimiter")
        out += plain[: end - 1]
    return out


def verify_vapid(header: str, origin: str, server_key: str) -> dict[str, Any]:
    """The JWT's claims; raises ``ValueError`` saying what is wrong."""
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError(f"authorization scheme {scheme!r} is not vapid")
    parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
    token, k = parts.get("t", ""), parts.get("k", "")
    if k != server_key:
        raise ValueError("k is not the application server key the subscription was made with")
    try:
        head_b, claims_b, sig_b = token.split(".")
    except ValueError:
        raise ValueError("t is not a JWT of three parts") from None
    head = json.loads(unb64url(head_b))
    if head.get("alg") != "ES256":
        raise ValueError(f"JWT alg {head.get('alg')!r} is not ES256")
    sig = unb64url(sig_b)
    if len(sig) != 64:
        raise ValueError("ES256 signature is not 64 bytes")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(k))
    try:
        public.verify(der, f"{head_b}.{claims_b}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("JWT signature does not verify with k") from None
    claims: dict[str, Any] = json.loads(unb64url(claims_b))
    if claims.get("aud") != origin:
        raise ValueError(f"aud {claims.get('aud')!r} is not {origin!r}")
    exp = claims.get("exp")
    now = time.time()
    if not isinstance(exp, int) or exp <= now or exp > now + 24 * 3600:
        raise ValueError(f"exp {exp!r} is not within the next 24 hours")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise ValueError(f"sub {claims.get('sub')!r} is not a mailto: or https: URL")
    return claims


class PushService:
    def __init__(self) -> None:
        self.browsers: dict[str, Browser] = {}
        self.delivered: list[Delivered] = []
        self.rejected: list[tuple[str, int, str]] = []
        self.requests = 0
        #: connections opened to the service (a client that keeps them open opens few)
        self.connections = 0
        #: requests per endpoint, whatever the answer
        self.tried: dict[str, int] = {}
        self._script: dict[str, list[int]] = {}
        self._gone: set[str] = set()
        self._relays: dict[str, tuple[str, GcmStandIn]] = {}
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps a connection open for the next message

            def log_message(self, *args: object) -> None:
                return None

            def setup(self) -> None:
                super().setup()
                with service._lock:
                    service.connections += 1

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                status, extra = service.handle(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PushService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def subscribe(self, server_key: str) -> Browser:
        """A new endpoint for a browser subscribing with application server key ``server_key``."""
        b = Browser(f"{self.origin}/push/{secrets.token_urlsafe(12)}", server_key)
        self.browsers[b.endpoint] = b
        return b

    def relay(self, browser_endpoint: str, server_key: str, gcm: GcmStandIn) -> str:
        """An endpoint here for a real browser's subscription made through ``gcm``: messages
        posted to it are checked (VAPID, headers) and passed on to the browser over GCM's
        channel, as the push service the browser's endpoint names would. (Chromium puts
        Google's host in front of the token in its endpoints, which this machine cannot
        reach; the path and token are kept.)"""
        token = browser_endpoint.rsplit("/", 1)[-1]
        endpoint = f"{self.origin}/fcm/send/{token}"
        self.browsers[endpoint] = Browser(endpoint, server_key)
        self._relays[endpoint] = (token, gcm)
        return endpoint

    def script(self, endpoint: str, statuses: list[int]) -> None:
        self._script[endpoint] = list(statuses)

    def gone(self, endpoint: str) -> None:
        self._gone.add(endpoint)

    def to(self, endpoint: str) -> list[dict[str, Any]]:
        return [d.payload for d in self.delivered if d.endpoint == endpoint]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        h = {k.lower(): v for k, v in headers.items()}
        endpoint = self.origin + path
        with self._lock:
            self.requests += 1
            self.tried[endpoint] = self.tried.get(endpoint, 0) + 1
            if endpoint in self._gone or endpoint not in self.browsers:
                return 410, {}
            script = self._script.get(endpoint)
            if script:
                status = script.pop(0)
                return status, {"retry-after": "0"} if status == 429 else {}
        b = self.browsers[endpoint]
        try:
            claims = verify_vapid(h.get("authorization", ""), self.origin, b.server_key)
        except ValueError as exc:
            self.rejected.append((endpoint, 401, str(exc)))
            return 401, {}
        if h.get("content-encoding") != "aes128gcm" or not h.get("ttl", "").isdigit():
            self.rejected.append((endpoint, 400, "not aes128gcm, or no TTL"))
            return 400, {}
        if endpoint in self._relays:
            token, gcm = self._relays[endpoint]
            gcm.deliver(token, body)
            with self._lock:
                self.delivered.append(Delivered(endpoint, {}, time.time(), int(h["ttl"]), claims))
            return 201, {}
        try:
            plain = decrypt_aes128gcm(body, b.key, b.auth)
            payload = json.loads(plain)
        except Exception as exc:
            self.rejected.append((endpoint, 400, f"cannot decrypt: {exc!r}"))
            return 400, {}
        with self._lock:
            self.delivered.append(Delivered(endpoint, payload, time.time(), int(h["ttl"]), claims))
        return 201, {"location": f"{self.origin}/msg/{secrets.token_urlsafe(8)}"}


def _varint(n: int) -> bytes:
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])


def _field(number: int, value: str | bytes) -> bytes:
    """A length-delimited protobuf field."""
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _self_signed() -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1 (PEM files in a temporary directory)."""
    import datetime
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    d = tempfile.mkdtemp(prefix="lt-mcs-")
    cert_path, key_path = f"{d}/cert.pem", f"{d}/key.pem"
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


class GcmStandIn:
    """Chromium's own push transport (GCM), answered on 127.0.0.1, so that a real
    ``pushManager.subscribe`` succeeds and a real push reaches the browser with no outside
    service. Chromium takes the three addresses from switches (:attr:`args`):

    - the device check-in (``--gcm-checkin-url``, protobuf over HTTP): answered with a device id
      and security token;
    - the registration (``--gcm-registration-url``, a form over HTTP): answered with a token,
      which Chromium puts at the end of the subscription's endpoint; the form names the
      application server key (``sender``) and the subscription's app id (``X-subtype``);
    - the message channel (``--gcm-mcs-endpoint``, GCM's MCS protocol over TLS, here with a
      throwaway certificate, so the browser runs with ``--ignore-certificate-errors``): the
      login is answered, and :meth:`deliver` sends a data message carrying an ``aes128gcm``
      body as the push service would. Chromium decrypts it with the subscription's private key
      and fires the service worker's ``push`` event."""

    def __init__(self) -> None:
        import socket
        import ssl

        self.registrations: dict[str, dict[str, str]] = {}
        self.delivered = 0
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                if self.path == "/checkin":
                    # AndroidCheckinResponse: stats_ok (1), android_id (7), security_token (8)
                    out = b"\x08\x01" + b"\x39" + (4242).to_bytes(8, "little")
                    out += b"\x41" + (2424).to_bytes(8, "little")
                elif self.path == "/register":
                    from urllib.parse import parse_qsl

                    form = dict(parse_qsl(body.decode()))
                    token = f"lt-{secrets.token_urlsafe(16)}"
                    stand_in.registrations[token] = form
                    out = f"token={token}".encode()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        url = f"http://127.0.0.1:{self.server.server_port}"
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(*_self_signed())
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        mcs_port = self._listener.getsockname()[1]
        #: the switches that send Chromium's GCM traffic here
        self.args = [
            f"--gcm-checkin-url={url}/checkin",
            f"--gcm-registration-url={url}/register",
            f"--gcm-mcs-endpoint=https://127.0.0.1:{mcs_port}",
            "--ignore-certificate-errors",
        ]
        self._threads = [
            threading.Thread(target=self.server.serve_forever, daemon=True),
            threading.Thread(target=self._accept, daemon=True),
        ]

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(raw,), daemon=True).start()

    def _session(self, raw: Any) -> None:
        """One MCS connection: the version byte and a login request in, a login response
        out; then whatever the browser sends (heartbeats, acknowledgements) is read and let
        be."""
        conn = raw
        try:
            conn = self._tls.wrap_socket(raw, server_side=True)
            got = b""
            while len(got) < 3:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                got += chunk
            if got[0] != 41 or got[1] != 2:  # MCS version 41, then a LoginRequest (tag 2)
                return
            login = _field(1, "lt-login")
            conn.sendall(bytes([41, 3]) + _varint(len(login)) + login)
            with self._lock:
                self._conns.append(conn)
            while conn.recv(4096):
                pass
        except OSError:
            return
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._conns.remove(conn)
            conn.close()
            raw.close()

    def deliver(self, token: str, body: bytes, timeout: float = 30.0) -> None:
        """Send ``body`` (an ``aes128gcm`` message) to the browser registered as ``token``."""
        form = self.registrations[token]
        self.delivered += 1

        def app_data(key: str, value: str) -> bytes:
            return _field(7, _field(1, key) + _field(2, value))

        stanza = (
            _field(2, f"m{self.delivered}")  # id
            + _field(3, form["sender"])  # from: the application server key it was made with
            + _field(5, form["app"])  # category
            + app_data("subtype", form["X-subtype"])  # the subscription's app id
            + app_data("content-encoding", "aes128gcm")
            + _field(9, f"0:{self.delivered}")  # persistent id
            + _field(21, body)  # raw data
        )
        frame = bytes([8]) + _varint(len(stanza)) + stanza  # a DataMessageStanza (tag 8)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                conn = self._conns[-1] if self._conns else None
            if conn is not None:
                try:
                    conn.sendall(frame)
                    return
                except OSError:  # the browser dropped that connection: wait for its next
                    with self._lock, contextlib.suppress(ValueError):
                        self._conns.remove(conn)
                    conn.close()
            time.sleep(0.1)
        raise TimeoutError("the browser is not logged in to the message channel")

    def __enter__(self) -> GcmStandIn:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._listener.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.close()
