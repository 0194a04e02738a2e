"""Running the explorer's app (:func:`pellucid.explorer.server.create_app`) with uvicorn in a daemon thread."""
from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
import time
from typing import Any, Sequence

from .explorer import Explorer
from .server import create_app


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Server:
    """The app of ``explorers`` served by uvicorn in a daemon thread; :meth:`start` returns the URL."""

    def __init__(self, explorers: Sequence[Explorer], host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None):
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
            raise ValueError(f"port must be an integer in [0, 65535]; received {port!r}")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be an address such as '127.0.0.1'; received {host!r}")
        self.loopback = is_loopback(host)
        if token is None and not self.loopback:
            token = secrets.token_urlsafe(24)
        self.token = token
        self.host, self.port = host, port
        allowed = ("127.0.0.1", "localhost", "[::1]", "::1") if self.loopback else None
        self.app = create_app(explorers, token=token, allowed_hosts=allowed)
        self.url: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> str:
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise ValueError(f"cannot bind {self.host}:{self.port}: {e}") from None
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="pellucid-explorer-server", daemon=True)
        self._thread.start()
        t0 = time.time()
        while not self._server.started:
            if not self._thread.is_alive() or time.time() - t0 > timeout:
                raise RuntimeError(f"the explorer server did not start on {self.host}:{port}")
            time.sleep(0.02)
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{port}/" + (f"?token={self.token}" if self.token else "")
        self.port = port
        return self.url

    def add(self, explorer: Explorer) -> None:
        """Serve one more explorer from the running app."""
        self.app.state.add_explorer(explorer)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel jobs and shut the server down."""
        self.app.state.worker.close(timeout)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
