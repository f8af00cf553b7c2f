"""Running the service: bind the socket, load the model, then hand both to uvicorn.

The socket is bound first and the workers load the model before uvicorn starts, so a port in
use or a model that cannot be loaded is one `UsageError` (``serve: error: ...``, exit 2), and
the first request finds a ready model. ``port=0`` binds any free port; ``on_ready`` is told the
address actually bound.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence

from mclcr_keras.errors import UsageError
from mclcr_keras.serve.settings import ServeSettings, is_loopback

logger = logging.getLogger(__name__)

__all__ = ["bind", "run_server"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6); `UsageError` when it cannot."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)[0]
        # proto must be IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY on the connections of such
        # a socket only, and without it Nagle's algorithm holds every answer on a kept-alive
        # connection for the client's delayed ACK (40 ms on Linux).
        sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.listen(128)
    return sock


def run_server(settings: ServeSettings, initializers: Sequence[Callable] = (),
               on_ready: Callable[[str], None] | None = None) -> None:
    """Serves until interrupted (Ctrl-C or SIGTERM: uvicorn finishes the open requests first).

    Args:
        settings: what to serve (`ServeSettings`).
        initializers: run first in each worker process (logging, a quiet TensorFlow import).
        on_ready: called with the URL once the model is loaded and the port is open.
    """
    import uvicorn

    from mclcr_keras.serve.app import create_app

    settings.validate()
    if not is_loopback(settings.host) and settings.token is None:
        logger.warning("listening on %s without a token: anyone who can reach this port can "
                       "score files (set --token or MCLCR_SERVE_TOKEN)", settings.host)
    app = create_app(settings, initializers=initializers)
    sock = bind(settings.host, settings.port)
    try:
        app.state.runner.start()
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        if on_ready is not None:
            on_ready(f"http://{shown}:{port}/")
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                                timeout_graceful_shutdown=max(5, int(settings.timeout)))
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        app.state.runner.close()
        sock.close()
