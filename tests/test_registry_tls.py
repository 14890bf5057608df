"""TLS: a registry with a private CA is trusted through --ca-file or SSL_CERT_FILE, and an
untrusted certificate is a clear error, never a silent downgrade to plain HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, RegistryFactory
from registry import make_tls_cert
from test_registry_transfer import build_tiny, error_lines


@pytest.fixture
def registry_tls(registry_factory: RegistryFactory, tmp_path: Path) -> Any:
    return registry_factory("none", tls=make_tls_cert(tmp_path / "tls"))


def test_ca_file_and_ssl_cert_file_make_a_private_ca_trusted(
    registry_tls: Any, cli: CLI, tiny_gguf: Path, tmp_path: Path
) -> None:
    cert = registry_tls.tls[0]
    ref = f"{registry_tls.host}/team/tiny:tls"
    built = build_tiny(cli, tiny_gguf, ref)
    pushed = cli("push", ref, "--ca-file", cert, "--quiet")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == built

    fresh = {
        "OCILLM_HOME": str(tmp_path / "f"),
        "OCILLM_MODELS": str(tmp_path / "f/m"),
        "SSL_CERT_FILE": str(cert),
    }
    pulled = cli("pull", ref, "--quiet", env=fresh)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == built


def test_an_untrusted_certificate_is_an_error_not_a_downgrade(
    registry_tls: Any, cli: CLI, tiny_gguf: Path
) -> None:
    ref = f"{registry_tls.host}/team/tiny:untrusted"
    build_tiny(cli, tiny_gguf, ref)
    out = cli("push", ref)
    assert out.returncode == 1
    (line,) = error_lines(out.stderr)
    assert registry_tls.host in line and "TLS certificate not trusted" in line
