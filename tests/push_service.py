"""A Web Push service on 127.0.0.1, the peer our ``WebPushTransport`` talks to in tests.

It does what a real push service does with a request (RFC 8030/8291/8292): checks the
VAPID ``Authorization: vapid t=JWT,k=KEY`` header (the ES256 signature against the key,
which must be the server's; ``aud`` is this service's origin; ``exp`` within 24 hours),
decrypts the ``aes128gcm`` body with the subscription's private key and auth secret
(``http_ece``), and answers with the status its subscription was created with: 201, or
410 (gone: the sender must drop it), or 500 (the sender should retry).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from chat.transports import vapid_public_key


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    token: str
    status: int
    payload: dict[str, Any] | None
    claims: dict[str, Any]
    headers: dict[str, str]
    error: str = ""


@dataclass
class Subscriber:
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    status: int


@dataclass
class PushService:
    base: str = ""
    expected_key: str = ""  # the application server key every request must be signed with
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    received: list[Push] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def subscription(self, status: int = 201) -> dict[str, Any]:
        """A new browser's subscription (what ``PushSubscription.toJSON()`` gives)."""
        token = b64url(os.urandom(12))
        private_key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.subscribers[token] = Subscriber(private_key, auth, status)
        public = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.base}/push/{token}",
            "keys": {"p256dh": b64url(public), "auth": b64url(auth)},
        }

    def wait_for(self, count: int, timeout: float = 10) -> list[Push]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} pushes, got {len(self.received)}")

    # --- Checking one request --------------------------------------------------------------

    def handle(self, token: str, headers: dict[str, str], body: bytes) -> Push:
        subscriber = self.subscribers.get(token)
        if subscriber is None:
            return Push(token, 404, None, {}, headers, "no such subscription")
        try:
            claims = self.check_vapid(headers)
        except ValueError as problem:
            return Push(token, 401, None, {}, headers, str(problem))
        if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
            return Push(token, 400, None, claims, headers, "content-encoding/ttl missing")
        try:
            plain = http_ece.decrypt(
                body,
                private_key=subscriber.private_key,
                auth_secret=subscriber.auth,
                version="aes128gcm",
            )
        except Exception as problem:  # http_ece raises its own and cryptography's errors
            return Push(token, 400, None, claims, headers, f"cannot decrypt: {problem!r}")
        return Push(token, subscriber.status, json.loads(plain), claims, headers)

    def check_vapid(self, headers: dict[str, str]) -> dict[str, Any]:
        scheme, _, params = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("not a VAPID authorization")
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        if fields.get("k") != self.expected_key:
            raise ValueError("signed with another key")
        head, claims_part, signature = fields["t"].split(".")
        if json.loads(unb64url(head)).get("alg") != "ES256":
            raise ValueError("not ES256")
        raw = unb64url(signature)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
        der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
        try:
            public.verify(der, f"{head}.{claims_part}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise ValueError("bad signature") from None
        claims: dict[str, Any] = json.loads(unb64url(claims_part))
        if claims.get("aud") != self.base:
            raise ValueError(f"aud {claims.get('aud')!r} is not {self.base!r}")
        if not time.time() < claims.get("exp", 0) <= time.time() + 24 * 3600:
            raise ValueError("exp out of range")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError("sub must be mailto: or https:")
        return claims


def start(service: PushService) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            token = self.path.rsplit("/", 1)[-1]
            push = service.handle(token, headers, body)
            with service.lock:
                service.received.append(push)
            self.send_response(push.status)
            self.send_header("content-length", str(len(push.error)))
            self.end_headers()
            self.wfile.write(push.error.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fresh_vapid_key() -> str:
    der = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return b64url(der)


@pytest.fixture
def push_service(settings: Any) -> Iterator[PushService]:
    """A push service on loopback, and a VAPID key of this test's own to sign with."""
    settings.VAPID_PRIVATE_KEY = fresh_vapid_key()
    service = PushService(expected_key=vapid_public_key())
    server = start(service)
    yield service
    server.shutdown()
    server.server_close()
