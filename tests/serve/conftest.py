"""One server per bundle for the session (starting one costs a bundle load)."""

from __future__ import annotations

import pytest

from tests.serve.server import ServerProcess


@pytest.fixture(scope="session")
def text_server(export_bundle):
    server = ServerProcess(export_bundle("text", "fused"), "--model-name", "tiny")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vision_server(export_bundle):
    server = ServerProcess(export_bundle("vl", "fused"), "--model-name", "tiny-vl")
    yield server
    server.stop()
