"""A pytest plugin: moto's server mode as the S3 and DynamoDB endpoint, over real HTTP.

- ``aws_endpoint`` (session): starts moto's WSGI application in a subprocess on
  127.0.0.1 with a free port, points ``AWS_ENDPOINT_URL`` at it with dummy credentials,
  and stops it at the end of the session.
- ``_isolated_aws_env`` (autouse): strips the developer's own ``AWS_*`` variables and
  config files for every test, so no test can reach a real account.
- ``aws_spec_factory``: ``make("s3")`` / ``make("dynamodb")`` creates a fresh bucket or
  table for the test and returns its store spec string.

The server is moto's own application served by werkzeug, with one difference from
``python -m moto.server``: each request is handled under a lock. moto applies S3's
``If-Match`` / ``If-None-Match`` and DynamoDB's condition expressions as a check followed
by a write, with no lock between them, while AWS applies them atomically; serialising
requests makes the emulator as strict as the services, so concurrency tests measure the
stores and not the emulator. Run this file as a script to start a server by hand; it
prints its port on the first line.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

#: SeaweedFS and DynamoDB Local fixtures, next to moto's.
pytest_plugins = ["tests.real_servers"]

#: Values every test sees while the emulator runs (set by ``aws_endpoint``).
_EMULATOR_ENV: dict[str, str] = {}

_STRIPPED_PREFIXES = ("AWS_", "BOTO_")


class _SerialApp:
    """Handle one WSGI request at a time (see the module docstring for why)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        # Read the whole body before taking the lock: a client stopped halfway through
        # sending (SIGSTOP in the fencing test) must not hold every other client up.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        with self._lock:
            # Consume the response inside the lock: the body is where moto does its work.
            result = self._app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def serve() -> None:
    """Serve moto on 127.0.0.1 with a free port; print the port, then serve forever."""
    import logging

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1",
        0,
        _SerialApp(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    os.environ["MOTO_PORT"] = str(server.port)
    print(server.port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


def _wait_until_answering(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"moto server at {url} did not answer within 30 s")


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_PREFIXES)}


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """The URL of a moto server running for the whole session."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_clean_environ(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"moto server did not report its port (got {line!r})")
        url = f"http://127.0.0.1:{line}"
        _wait_until_answering(url, process)
        values = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        saved = {k: os.environ.get(k) for k in values}
        _EMULATOR_ENV.update(values)
        os.environ.update(values)
        try:
            yield url
        finally:
            _EMULATOR_ENV.clear()
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(autouse=True)
def _isolated_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: Any) -> None:
    """No test sees the developer's AWS variables, profiles or config files."""
    for key in list(os.environ):
        if key.startswith(_STRIPPED_PREFIXES):
            monkeypatch.delenv(key)
    missing = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(missing / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for key, value in _EMULATOR_ENV.items():
        monkeypatch.setenv(key, value)


def unique_name(kind: Literal["s3", "dynamodb"]) -> str:
    """A fresh bucket or table name."""
    suffix = uuid.uuid4().hex[:16]
    return f"ttflow-test-{suffix}" if kind == "s3" else f"ttflow_test_{suffix}"


def create_resource(kind: Literal["s3", "dynamodb"], name: str) -> None:
    """Create a bucket or a table with the store's key schema, synchronously."""
    import boto3

    if kind == "s3":
        boto3.client("s3").create_bucket(Bucket=name)
        return
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )


@pytest.fixture
def aws_spec_factory(aws_endpoint: str) -> Callable[[Literal["s3", "dynamodb"]], str]:
    """``make(kind)`` creates a fresh bucket/table and returns its store spec string."""

    def make(kind: Literal["s3", "dynamodb"]) -> str:
        name = unique_name(kind)
        create_resource(kind, name)
        return f"s3:{name}/ttflow" if kind == "s3" else f"dynamodb:{name}"

    return make


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        serve()
