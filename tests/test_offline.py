"""The suite runs offline: a hub id that is not cached fails clearly, without touching the network."""

import socket

import pytest

from autokose.errors import InputError

MISSING = "nobody/not-in-any-cache"


@pytest.fixture
def connections(monkeypatch, tmp_path):
    """An empty Hugging Face cache, and every connection attempt and name lookup recorded (and refused)."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    tried = []

    def refuse(kind):
        def record(*args, **kwargs):
            tried.append((kind, args[1:] if kind == "connect" else args[:1]))
            raise OSError(f"test: {kind} refused")
        return record

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    return tried


def assert_one_clear_line(error: InputError, *needles: str) -> None:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    for needle in needles:
        assert needle in text, text


def test_uncached_model_id_is_one_clear_line_without_a_connection(connections):
    from autokose.models import load_pipeline

    with pytest.raises(InputError) as err:
        load_pipeline(MISSING)
    assert_one_clear_line(err.value, MISSING, "local Hugging Face cache", "huggingface-cli download")
    assert connections == []


def test_uncached_hub_file_and_ip_adapter_name_fail_without_a_connection(connections):
    from autokose.models import hub_file
    from autokose.render.diffusion.controls import resolve_ip_adapter

    with pytest.raises(InputError) as err:
        hub_file(MISSING, "model_index.json")
    assert_one_clear_line(err.value, f"--model {MISSING}", "model_index.json", "offline")
    with pytest.raises(InputError) as err:
        resolve_ip_adapter("ip-adapter-plus-face_sd15", "sd15")
    assert_one_clear_line(err.value, "h94/IP-Adapter", "ip-adapter-plus-face_sd15.safetensors")
    assert connections == []


def test_connections_off_this_machine_fail_the_test():
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routed
