"""Fixtures for running the official `stytch` Python SDK against the local development server.

* `server` (session scope) starts `target/debug/local-api` (or `$LOCAL_API_BIN`) on a free
  port, waits until it answers, reads the development app's APP_ID / APP_SECRET from its
  stdout, and stops it at the end of the run.
* `app` (function scope) creates a fresh app through the management API, with a default sms
  and a default email login config, so that every test has its own users, codes and limits.
* `client` is a `stytch.Client` for that app, pointed at the server.
* `newest_code(to)` reads the code of the newest outbox message sent to a phone number or email.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest
import requests
import stytch

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "local-api"
MANAGEMENT_KEY = "sdk-tests-management-key"
START_TIMEOUT_SECONDS = 30.0
HTTP_TIMEOUT_SECONDS = 10.0

_APP_ID_RE = re.compile(r"development app: APP_ID=(\S+)")
_APP_SECRET_RE = re.compile(r"development app: APP_SECRET=(\S+)")


@dataclass
class App:
    id: str
    secret: str


@dataclass
class LocalServer:
    base_url: str  # e.g. "http://127.0.0.1:41234", no trailing slash (also the JWT issuer)
    management_key: str
    dev_app: App
    process: subprocess.Popen
    stdout_lines: List[str] = field(default_factory=list)

    @property
    def environment(self) -> str:
        """The value given to `stytch.Client(environment=...)`."""
        return self.base_url + "/"

    def management(self, method: str, path: str, json: Optional[dict] = None) -> requests.Response:
        return requests.request(
            method,
            self.base_url + path,
            json=json,
            headers={"Authorization": f"Bearer {self.management_key}"},
            timeout=HTTP_TIMEOUT_SECONDS,
        )

    def outbox(self) -> list:
        response = requests.get(self.base_url + "/_dev/outbox", timeout=HTTP_TIMEOUT_SECONDS)
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.stdout_lines[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _drain(stream, sink: List[str], log_file) -> None:
    """Reads the server's stdout until it closes, so the pipe never fills up."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        sink.append(line)
        log_file.write(line + "\n")
        log_file.flush()
    stream.close()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def server() -> Iterator[LocalServer]:
    binary = Path(os.environ.get("LOCAL_API_BIN") or DEFAULT_BIN)
    if not binary.is_file():
        pytest.fail(
            f"local-api binary not found at {binary}: run `cargo build --bin local-api` "
            "or set LOCAL_API_BIN",
            pytrace=False,
        )
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        {
            "PORT": str(port),
            "PUBLIC_BASE_URL": base_url,
            "MANAGEMENT_KEY": MANAGEMENT_KEY,
            "LOCAL_BACKEND": "memory",
            # A short cooldown keeps tests that send twice to one number fast; the limit
            # itself is still exercised (tests retry after `retry_after_seconds`).
            "SEND_COOLDOWN_SECONDS": "2",
            "RUST_LOG": env.get("RUST_LOG", "info"),
        }
    )
    env.pop("JWT_SIGNING_KEY_PEM", None)

    log_path = Path(tempfile.gettempdir()) / f"local-api-sdk-tests-{port}.log"
    log_file = open(log_path, "w", encoding="utf-8")
    stderr_file = open(log_path.with_suffix(".stderr.log"), "w", encoding="utf-8")
    process = subprocess.Popen(
        [str(binary)],
        cwd=str(REPO_ROOT),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
    )
    lines: List[str] = []
    reader = threading.Thread(target=_drain, args=(process.stdout, lines, log_file), daemon=True)
    reader.start()

    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        app_id = app_secret = None
        answering = False
        while time.monotonic() < deadline:
            if process.poll() is not None:
                reader.join(timeout=2)
                pytest.fail(
                    f"local-api exited with {process.returncode} before answering; "
                    f"stdout:\n" + "\n".join(lines) + f"\nstderr: see {stderr_file.name}",
                    pytrace=False,
                )
            for line in list(lines):
                if app_id is None and (m := _APP_ID_RE.search(line)):
                    app_id = m.group(1)
                if app_secret is None and (m := _APP_SECRET_RE.search(line)):
                    app_secret = m.group(1)
            if not answering:
                try:
                    answering = (
                        requests.get(base_url + "/_dev/outbox", timeout=1).status_code == 200
                    )
                except requests.RequestException:
                    answering = False
            if answering and app_id and app_secret:
                break
            time.sleep(0.1)
        else:
            pytest.fail(
                f"local-api did not answer on {base_url} with its development app within "
                f"{START_TIMEOUT_SECONDS:.0f} s; stdout so far:\n" + "\n".join(lines),
                pytrace=False,
            )

        yield LocalServer(
            base_url=base_url,
            management_key=MANAGEMENT_KEY,
            dev_app=App(id=app_id, secret=app_secret),
            process=process,
            stdout_lines=lines,
        )
    finally:
        _stop(process)
        reader.join(timeout=5)
        log_file.close()
        stderr_file.close()


def create_app(server: LocalServer, name: str) -> App:
    """A new app with a default sms and a default email login config."""
    response = server.management("POST", "/v2/session/apps", {"name": name[:100]})
    assert response.status_code == 201, f"create app: {response.status_code} {response.text}"
    body = response.json()
    app = App(id=body["app"]["id"], secret=body["secret"])
    for channel in ("sms", "email"):
        response = server.management(
            "POST",
            f"/v2/session/apps/{app.id}/config/login/otp",
            {"config_type": "otp", "channel_type": channel, "is_default": True},
        )
        assert response.status_code == 201, (
            f"create {channel} login config: {response.status_code} {response.text}"
        )
    return app


@pytest.fixture
def app(server: LocalServer, request) -> App:
    return create_app(server, f"sdk {request.node.name} {uuid.uuid4().hex[:8]}")


@pytest.fixture
def client(server: LocalServer, app: App) -> stytch.Client:
    return stytch.Client(project_id=app.id, secret=app.secret, environment=server.environment)


def newest_message(server: LocalServer, to: str) -> dict:
    for message in server.outbox():  # newest first
        if message.get("to") == to:
            return message
    raise AssertionError(f"no outbox message to {to!r}")


def newest_code(server: LocalServer, to: str) -> str:
    message = newest_message(server, to)
    code = message.get("code")
    assert isinstance(code, str) and code.isdigit(), f"outbox message without a code: {message}"
    return code


@pytest.fixture
def read_code(server: LocalServer) -> Callable[[str], str]:
    """`read_code(to)`: the code of the newest outbox message to that phone number or email."""
    return lambda to: newest_code(server, to)
