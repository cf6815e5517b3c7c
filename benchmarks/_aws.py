"""moto's server mode behind the latency proxy, for the remote-store benchmark (B5).

:func:`remote_endpoint` starts ``moto_server`` on 127.0.0.1 and ``latency_proxy.py`` in
front of it, each in its own process, and yields the environment a scenario process
needs (dummy credentials, ``AWS_ENDPOINT_URL`` pointing at the proxy, and the proxy's
control port). Nothing leaves 127.0.0.1.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers any HTTP status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def remote_endpoint(delay_ms: float = 10.0) -> Iterator[dict[str, str]]:
    """Run moto and the latency proxy; yield the environment that points at them."""
    moto_port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy: subprocess.Popen[str] | None = None
    try:
        wait_http(f"http://127.0.0.1:{moto_port}/moto-api/")
        proxy = subprocess.Popen(
            [
                sys.executable,
                str(BENCH_DIR / "latency_proxy.py"),
                "--upstream",
                f"127.0.0.1:{moto_port}",
                "--delay-ms",
                str(delay_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proxy.stdout is not None
        ports = json.loads(proxy.stdout.readline())
        yield {
            **DUMMY_AWS_ENV,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['port']}",
            "BENCH_MOTO_URL": f"http://127.0.0.1:{moto_port}",
            "BENCH_PROXY_CONTROL": str(ports["control_port"]),
        }
    finally:
        if proxy is not None:
            _stop(proxy)
        _stop(moto)


class ProxyControl:
    """Talk to the proxy's control port (blocking; only outside timed sections)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rwb")

    def _ask(self, command: str) -> bytes:
        self.file.write(command.encode() + b"\n")
        self.file.flush()
        return self.file.readline()

    def reset(self) -> None:
        """Clear the proxy's counters."""
        self._ask("reset")

    def stats(self) -> dict[str, Any]:
        """The proxy's counters since the last reset."""
        return dict(json.loads(self._ask("stats")))

    def close(self) -> None:
        """Close the control connection."""
        self.file.close()
        self.sock.close()


def control_from_env() -> ProxyControl:
    """The proxy control named by ``BENCH_PROXY_CONTROL``."""
    return ProxyControl(int(os.environ["BENCH_PROXY_CONTROL"]))
