"""API-key registry, the error-to-status mapping, and the gateway's torch-free import."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import redis

from genaudit import errors
from genaudit.errors import DeadlineExceeded, FailedPrecondition, GenauditError, IntegrityError, NotFound, Unavailable
from genaudit.gateway.auth import ApiKeyRegistry, hash_api_key
from genaudit.gateway.errors import status_of
from genaudit.settings import Settings


def test_keys_from_file_and_inline_map_to_their_tenants(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({"tenants": {"acme": [hash_api_key("k-acme-1"), hash_api_key("k-acme-2")]}}))
    registry = ApiKeyRegistry.from_settings(
        Settings(api_keys_file=str(keys_file), api_keys=f"beta:{hash_api_key('k-beta')}"))
    assert len(registry) == 3
    assert registry.tenant_for("k-acme-1") == registry.tenant_for("k-acme-2") == "acme"
    assert registry.tenant_for("k-beta") == "beta"
    assert registry.tenant_for("k-gamma") is None
    assert registry.tenant_for(hash_api_key("k-beta")) is None  # the digest itself is not a key
    assert hash_api_key("abc") == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize("api_keys", ["acme", "acme:1234", f"acme:{'g' * 64}", f":{'a' * 64}"])
def test_malformed_key_configuration_is_refused(api_keys: str) -> None:
    with pytest.raises(ValueError):
        ApiKeyRegistry.from_settings(Settings(api_keys=api_keys))


def test_no_keys_configured_matches_nothing() -> None:
    registry = ApiKeyRegistry.from_settings(Settings())
    assert len(registry) == 0 and registry.tenant_for("") is None and registry.tenant_for("x") is None


def test_exceptions_map_to_status_codes() -> None:
    assert status_of(NotFound("job x not found")) == (grpc.StatusCode.NOT_FOUND, "job x not found")
    assert status_of(FailedPrecondition("no")) == (grpc.StatusCode.FAILED_PRECONDITION, "no")
    assert status_of(Unavailable("redis down"))[0] == grpc.StatusCode.UNAVAILABLE
    assert status_of(IntegrityError("bad sha"))[0] == grpc.StatusCode.DATA_LOSS
    assert status_of(DeadlineExceeded("still running"))[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_of(redis.ConnectionError("refused"))[0] == grpc.StatusCode.UNAVAILABLE
    assert status_of(ConnectionRefusedError(111, "refused"))[0] == grpc.StatusCode.UNAVAILABLE
    code, message = status_of(KeyError("secret internals"))
    assert code == grpc.StatusCode.INTERNAL and "secret" not in message


def test_every_domain_error_names_a_grpc_status() -> None:
    domain_errors = [e for e in vars(errors).values() if isinstance(e, type) and issubclass(e, GenauditError)]
    assert len(domain_errors) > 10
    unknown = [e.__name__ for e in domain_errors if not hasattr(grpc.StatusCode, e.grpc_status)]
    assert not unknown  # a misspelt status would fall back to INTERNAL


def test_gateway_server_imports_without_torch() -> None:
    code = ("import sys, genaudit.gateway.server, genaudit.gateway.context; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
