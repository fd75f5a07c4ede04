"""A Web Push service stand-in on loopback, and a browser's side of a subscription.

`PushService` is a real HTTP server in a thread: it takes the POSTs a push service gets
(RFC 8030 §5), checks each one's VAPID authorization (RFC 8292: the ES256 signature
against the key in ``k``, and the ``aud`` / ``exp`` claims), and keeps them. `Browser`
holds what a browser keeps for a subscription (an ECDH P-256 key pair and a 16-byte auth
secret, RFC 8291 §3.2) and decrypts a push's body with them (``aes128gcm``, RFC 8188),
through http_ece and cryptography: nothing of fastim's own code takes part.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

SAFETY = 10.0  # a safety net only: no test asserts on time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    """One push as the service got it, its VAPID checked."""

    path: str
    headers: dict[str, str]
    body: bytes
    claims: dict[str, Any]
    vapid_key: str


def check_vapid(authorization: str, audience: str) -> tuple[dict[str, Any], str]:
    """RFC 8292 §3: ``vapid t=<JWT>, k=<public key>``; the JWT is ES256 (§2), signed by
    the key in ``k``, for `audience`, expiring within 24 hours. Returns (claims, k)."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    token, key = fields["t"], fields["k"]
    head, payload, signature = token.split(".")
    header = json.loads(unb64url(head))
    assert header["alg"] == "ES256" and header.get("typ", "JWT") == "JWT", header
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    raw = unb64url(signature)
    assert len(raw) == 64, "an ES256 signature is r || s, 32 bytes each (RFC 7518 §3.4)"
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    # Raises InvalidSignature when it was not signed by `key`.
    public.verify(der, f"{head}.{payload}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    claims = json.loads(unb64url(payload))
    assert claims["aud"] == audience, claims
    now = time.time()
    assert now < claims["exp"] <= now + 24 * 3600, claims
    assert str(claims.get("sub", "")).startswith(("mailto:", "https:")), claims
    return claims, key


@dataclass
class PushService:
    """The stand-in: answers 201 Created (RFC 8030 §5), or the status set for a path."""

    answers: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                audience = f"http://127.0.0.1:{service.port}"
                try:
                    claims, key = check_vapid(self.headers.get("Authorization", ""), audience)
                except Exception as exc:  # a bad signature is the test's failure
                    with service._changed:
                        service.refused.append(f"{self.path}: {exc!r}")
                        service._changed.notify_all()
                    self.send_response(401)
                    self.end_headers()
                    return
                with service._changed:
                    service.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                     body, claims, key))
                    service._changed.notify_all()
                self.send_response(service.answers.get(self.path, 201))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/push/{secrets.token_hex(8)}"

    def to(self, endpoint: str) -> list[Received]:
        path = endpoint.split(str(self.port), 1)[1]
        return [r for r in self.received if r.path == path]

    def wait_for(self, endpoint: str, count: int = 1) -> list[Received]:
        """The pushes to `endpoint`, once there are `count` of them."""
        deadline = time.monotonic() + SAFETY
        with self._changed:
            while len(self.to(endpoint)) < count:
                assert not self.refused, self.refused
                left = deadline - time.monotonic()
                assert left > 0, f"{count} pushes to {endpoint} never came"
                self._changed.wait(left)
            assert not self.refused, self.refused
            return self.to(endpoint)


class Browser:
    """A browser's keys for one subscription (RFC 8291 §3.2), and its decryption."""

    def __init__(self, service: PushService) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = service.endpoint()

    def subscription(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives."""
        point = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)}}

    def decrypt(self, push: Received) -> dict[str, Any]:
        """The push's JSON, decrypted with this browser's private key and auth secret."""
        assert push.headers.get("content-encoding") == "aes128gcm", push.headers
        plain = http_ece.decrypt(push.body, private_key=self.private,
                                 auth_secret=self.auth, version="aes128gcm")
        return json.loads(plain)


