"""API-key authentication: keys map to tenants; the tenant reaches servicers through a context variable.

Keys are never stored: the configuration holds the sha256 hex digest of each key, either in a JSON file
(``settings.api_keys_file``: ``{"tenants": {"<tenant>": ["<sha256 hex>", ...]}}``) or inline
(``settings.api_keys``: ``"tenant:sha256hex,tenant2:sha256hex"``); both are merged. A presented key is
hashed and compared with every stored digest by ``hmac.compare_digest``, without stopping at a match, so
the time taken does not tell how many digests or which one matched.

Clients send ``authorization: Bearer <key>`` or ``x-api-key: <key>``. Health checking and reflection
need no key (probes and tooling). No key configured means every other call is UNAUTHENTICATED.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import grpc

from genaudit.errors import Unauthenticated
from genaudit.gateway.handlers import Behavior, Wrap, rewrap, split_method
from genaudit.settings import Settings

logger = logging.getLogger(__name__)

_TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("genaudit_tenant")
_SHA256_HEX_LEN = 64
PUBLIC_SERVICES = frozenset({
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
})


def hash_api_key(key: str) -> str:
    """The digest stored in the configuration for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def current_tenant() -> str:
    """Tenant of the call being handled; only set inside an authenticated servicer call."""
    tenant = _TENANT.get("")
    if not tenant:
        raise Unauthenticated("no authenticated tenant for this call")
    return tenant


class ApiKeyRegistry:
    """Tenant lookup by API key over sha256 digests, in constant time per configured digest."""

    def __init__(self, digests: Iterable[tuple[str, str]]) -> None:
        entries = []
        for tenant, digest in digests:
            digest = digest.strip().lower()
            if len(digest) != _SHA256_HEX_LEN or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"API key of tenant {tenant!r} is not a sha256 hex digest")
            if not tenant:
                raise ValueError("API key entry without a tenant")
            entries.append((tenant, digest.encode()))
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeyRegistry:
        digests: list[tuple[str, str]] = []
        if settings.api_keys_file:
            data = json.loads(Path(settings.api_keys_file).expanduser().read_text())
            tenants = data.get("tenants") if isinstance(data, dict) else None
            if not isinstance(tenants, dict):
                raise ValueError(f"{settings.api_keys_file}: expected {{\"tenants\": {{tenant: [sha256 hex]}}}}")
            for tenant, tenant_digests in tenants.items():
                if not isinstance(tenant_digests, list):
                    raise ValueError(f"{settings.api_keys_file}: tenant {tenant!r} needs a list of digests")
                digests.extend((tenant, d) for d in tenant_digests)
        for entry in filter(None, (e.strip() for e in settings.api_keys.split(","))):
            tenant, sep, digest = entry.partition(":")
            if not sep:
                raise ValueError(f"api_keys entry {entry!r} is not 'tenant:sha256hex'")
            digests.append((tenant.strip(), digest))
        return cls(digests)

    def tenant_for(self, key: str) -> str | None:
        """The tenant owning ``key``, or None; compares against every digest (no early exit)."""
        candidate = hash_api_key(key).encode()
        found = None
        for tenant, digest in self._entries:
            if hmac.compare_digest(candidate, digest):
                found = tenant
        return found


def _presented_key(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for name, value in metadata or ():
        if isinstance(value, bytes):
            continue
        if name == "authorization":
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == "x-api-key" and value.strip():
            return value.strip()
    return ""


def _reject(message: str) -> Behavior:
    def behavior(request_or_iterator: object, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return behavior


def _with_tenant(tenant: str) -> Wrap:
    def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
        if response_streaming:
            def streaming(request: object, context: grpc.ServicerContext) -> object:
                token = _TENANT.set(tenant)
                try:
                    yield from behavior(request, context)
                finally:
                    _TENANT.reset(token)

            return streaming

        def unary(request: object, context: grpc.ServicerContext) -> object:
            token = _TENANT.set(tenant)
            try:
                return behavior(request, context)
            finally:
                _TENANT.reset(token)

        return unary

    return wrap


class AuthInterceptor(grpc.ServerInterceptor):
    """UNAUTHENTICATED without a known key; otherwise runs the servicer with the key's tenant set."""

    def __init__(self, registry: ApiKeyRegistry) -> None:
        self._registry = registry

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED
        service, _ = split_method(handler_call_details.method)
        if service in PUBLIC_SERVICES:
            return handler
        key = _presented_key(handler_call_details.invocation_metadata)
        if not key:
            return rewrap(handler, lambda _b, _s: _reject(
                "missing API key: send 'authorization: Bearer <key>' or 'x-api-key: <key>'"))
        tenant = self._registry.tenant_for(key)
        if tenant is None:
            return rewrap(handler, lambda _b, _s: _reject("invalid API key"))
        return rewrap(handler, _with_tenant(tenant))
