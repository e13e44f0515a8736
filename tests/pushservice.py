"""A stand-in Web Push service over real HTTP on 127.0.0.1, strict like the real ones.

Each endpoint it hands out (:meth:`PushService.subscribe`) belongs to a browser-like key pair
made here (a real P-256 ECDH key and a 16-byte auth secret). A message posted to an endpoint
is accepted (201) only when:

- its ``Authorization: vapid t=<JWT>, k=<key>`` header carries an ES256 JWT whose signature
  verifies with ``k``, ``k`` is the application server key the subscription was made with,
  ``aud`` is this service's origin, ``exp`` is in the future and at most 24 h away, and
  ``sub`` is a ``mailto:`` or ``https:`` URL (RFC 8292);
- it has a ``TTL`` header, and its body is ``Content-Encoding: aes128gcm`` that decrypts with
  the subscription's private key and auth secret (RFC 8291, RFC 8188).

Otherwise it answers 400/401/403 and keeps the reason in :attr:`PushService.rejected`.
``script(endpoint, [429, 503])`` makes the next answers to an endpoint those statuses
(``Retry-After: 0`` on a 429); ``gone(endpoint)`` makes it answer 410 for good.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


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
        self._script: dict[str, list[int]] = {}
        self._gone: set[str] = set()
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

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
        try:
            plain = http_ece.decrypt(
                body, private_key=b.key, auth_secret=b.auth, version="aes128gcm"
            )
            payload = json.loads(plain)
        except Exception as exc:
            self.rejected.append((endpoint, 400, f"cannot decrypt: {exc!r}"))
            return 400, {}
        with self._lock:
            self.delivered.append(Delivered(endpoint, payload, time.time(), int(h["ttl"]), claims))
        return 201, {"location": f"{self.origin}/msg/{secrets.token_urlsafe(8)}"}


class GcmStandIn:
    """Chromium's own push transport (GCM) registers a browser with two HTTP calls before
    ``pushManager.subscribe`` answers: a device check-in (protobuf) and a registration (form).
    Chromium takes their URLs from ``--gcm-checkin-url`` and ``--gcm-registration-url``; this
    answers both on 127.0.0.1, so a real subscription is made with no outside service. (The
    push messages themselves would then come over GCM's own TLS channel, which this does not
    offer: tests deliver pushes to the worker through the DevTools protocol instead.)"""

    def __init__(self) -> None:
        self.registrations: list[dict[str, str]] = []
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
                    stand_in.registrations.append(form)
                    out = f"token=lt-{secrets.token_urlsafe(16)}".encode()
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
        #: the switches that send Chromium's GCM traffic here (the MCS port is closed)
        self.args = [
            f"--gcm-checkin-url={url}/checkin",
            f"--gcm-registration-url={url}/register",
            "--gcm-mcs-endpoint=https://127.0.0.1:9",
        ]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GcmStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
