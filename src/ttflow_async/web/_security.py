"""Safe defaults for the dashboard: security headers, a Host check, the write token.

- Every answer carries a strict Content-Security-Policy (scripts and styles only from
  the app itself, no inline script, no framing) and ``nosniff``.
- When the dashboard listens on a loopback address, only loopback ``Host`` headers are
  served, so a web page from elsewhere cannot reach it through DNS rebinding.
- Write actions need ``Authorization: Bearer <token>``, compared in constant time and
  checked, with the body-size cap, before any of the body is read.
  Browsers never attach that header by themselves, so a cross-site form cannot
  trigger anything either.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

_SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}

LOOPBACK_HOST_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or host name) only reaches this machine.

    Args:
        host: An IP address or a host name.

    Returns:
        True for ``localhost`` and loopback addresses.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_matches(given: str, expected: str) -> bool:
    """Compare a presented token with the configured one in constant time."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _host_name(host_header: str) -> str:
    """The host part of a ``Host`` header, without port or IPv6 brackets."""
    host_header = host_header.strip().lower()
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class SecurityMiddleware:
    """Adds the security headers to every answer and, optionally, checks ``Host``."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str] | None = None) -> None:
        """Wrap ``app``.

        Args:
            app: The ASGI application.
            allowed_hosts: Host names to serve (without port); ``None`` serves any.
        """
        self.app = app
        self.allowed_hosts = (
            None if allowed_hosts is None else {h.strip("[]").lower() for h in allowed_hosts}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.allowed_hosts is not None:
            host = _host_name(Headers(scope=scope).get("host", ""))
            if host not in self.allowed_hosts:
                response = PlainTextResponse("Invalid host header", status_code=400)
                await response(scope, receive, self._with_headers(send))
                return
        await self.app(scope, receive, self._with_headers(send))

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if headers.get("content-type", "").startswith("application/json"):
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        return send_with_headers


MAX_BODY_BYTES = 1_000_000


def _json_refusal(code: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code, headers=headers or None)


class WriteGuardMiddleware:
    """Checks a write request's token and size before any of its body is read.

    A ``POST`` (any method but ``GET``/``HEAD``/``OPTIONS``) without the right token is
    answered 401 (403 with writes disabled) from its headers alone; a body over
    ``max_body`` bytes is answered 413, from ``Content-Length`` when given or as soon
    as the streamed body passes the cap. A JSON body that cannot be parsed (nested too
    deeply, for one) is a 400 here rather than a 500 in the framework.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        disabled: str,
        unauthorized: str,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        """Wrap ``app``; ``disabled`` and ``unauthorized`` are the 403 and 401 messages."""
        self.app = app
        self.token = token
        self.disabled = disabled
        self.unauthorized = unauthorized
        self.max_body = max_body

    def _refusal(self, headers: Headers) -> JSONResponse | None:
        if self.token is None:
            return _json_refusal(403, self.disabled)
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token_matches(presented.strip(), self.token):
            return _json_refusal(401, self.unauthorized, **{"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return _json_refusal(413, self._too_large())
        return None

    def _too_large(self) -> str:
        return f"The request body is over {self.max_body} bytes; send less."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _json_refusal(413, self._too_large())(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and "json" in headers.get("content-type", ""):
            problem = _json_problem(body)
            if problem is not None:
                await _json_refusal(400, problem)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _json_problem(body: bytes) -> str | None:
    """Why ``body`` is not usable JSON, or ``None`` (the app reports other errors)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "The request body is not UTF-8 text."
    try:
        decoded = json.loads(text)
    except RecursionError:
        return "The request body is nested too deeply; flatten it."
    except ValueError:
        return None  # the framework's validation error says where
    if _has_lone_surrogate(decoded):
        return "The request body contains a lone surrogate escape, which is not valid text."
    return None


def _has_lone_surrogate(decoded: object) -> bool:
    stack = [decoded]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False
