"""Run the dashboard with uvicorn."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import uvicorn

from ._app import create_app
from ._security import LOOPBACK_HOST_NAMES, is_loopback

if TYPE_CHECKING:
    from .. import Client

logger = logging.getLogger("ttflow_async.web")


def serve(
    client: Client,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
) -> None:
    """Serve the dashboard for ``client`` until interrupted (blocking).

    On a loopback address (the default) the app answers only to loopback ``Host``
    names. Without ``token`` the write actions are disabled.

    Args:
        client: The workflow client.
        host: The address to bind; ``127.0.0.1`` keeps the dashboard on this machine.
        port: The TCP port.
        token: The secret that enables write actions; ``None`` (or an empty string)
            leaves them disabled.
    """
    if token == "":
        logger.warning("the dashboard token is empty: write actions stay disabled")
    loopback = is_loopback(host)
    app = create_app(client, token=token, allowed_hosts=LOOPBACK_HOST_NAMES if loopback else None)
    if not token:
        logger.info("write actions are disabled: no dashboard token was given")
    if not loopback:
        logger.warning(
            "the dashboard listens on %s, beyond this machine: put it behind HTTPS%s",
            host,
            " (the token travels in every write request)" if token else "",
        )
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
