"""Safe defaults for the dashboard: security headers, a Host check, the write token.

- Every answer carries a strict Content-Security-Policy (scripts and styles only from
  the app itself, no inline script, no framing) and ``nosniff``.
- When the dashboard listens on a loopback address, only loopback ``Host`` headers are
  served, so a web page from elsewhere cannot reach it through DNS rebinding.
- Write actions need ``Authorization: Bearer <token>``, compared in constant time.
  Browsers never attach that header by themselves, so a cross-site form cannot
  trigger anything either.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
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
