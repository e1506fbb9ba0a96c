"""Test set-up shared by every test: no network, no hub downloads."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("AUTOKOSE_LLM_API_KEY", "")

import socket  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """Tiny random-weight models shared by the whole session (tests/tiny.py's builders reuse what exists)."""
    path = tmp_path_factory.getbasetemp() / "tiny-models"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED


_connect = socket.socket.connect
_LOOPBACK = ("127.", "::1", "localhost")


def _loopback_only(sock, address):
    """Any connection off this machine fails the test that made it: tests never touch the network."""
    host = address[0] if isinstance(address, tuple) else ""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOOPBACK):
        raise AssertionError(f"test tried to reach the network: {address}")
    return _connect(sock, address)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)
