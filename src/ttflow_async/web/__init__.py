"""A web dashboard for ttflow-async: see and steer workflows in a browser.

Needs the ``web`` extra (``pip install 'ttflow-async[web]'``)::

    from ttflow_async.web import create_app, serve

    app = create_app(client, token="s3cret")     # an ASGI app for any server
    serve(client, token="s3cret")                # or run it on 127.0.0.1:8000

Reading is open to whoever can reach the address (loopback by default); firing a
trigger, sending an event or resuming needs ``Authorization: Bearer <token>`` and is
disabled when no token is given. See ``docs/dashboard.md`` for the security model.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "ttflow_async.web needs the web extra: pip install 'ttflow-async[web]'"
    ) from exc

from ._app import create_app as create_app
from ._serve import serve as serve

__all__ = ["create_app", "serve"]
