"""The suite runs offline: hub downloads are off and any non-loopback connection fails."""

import os
import socket

import pytest


def test_hub_is_offline():
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_connections_off_this_machine_fail_the_test():
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routed
