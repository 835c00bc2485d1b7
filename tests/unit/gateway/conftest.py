"""Fixtures shared by the gateway's unit tests."""

from __future__ import annotations

import pytest
from tls_certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with server and client certificates (one per test module)."""
    return make_pki(tmp_path_factory.mktemp("pki"))
