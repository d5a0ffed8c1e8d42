"""lamina.registry: talk to image registries (the OCI distribution API).

* :class:`RegistryClient` -- ping, authenticate, fetch and push manifests and blobs
  (:mod:`~lamina.registry.client`; the only module of lamina that imports httpx);
* :class:`RegistryConfig`, :class:`Endpoint` -- mirrors, HTTP/HTTPS, insecure
  registries (:mod:`~lamina.registry.config`);
* :class:`CredentialStore`, :class:`Credential` -- Docker's ``config.json`` and
  credential helpers, so ``docker login`` carries over (:mod:`~lamina.registry.credentials`);
* :func:`parse_www_authenticate`, :class:`TokenCache` -- the auth schemes
  (:mod:`~lamina.registry.auth`);
* :class:`ProgressEvent`, :class:`Reporter` -- transfer progress for a front end to
  render (:mod:`~lamina.registry.progress`).

Names are imported on first use, so ``import lamina.registry`` does not load httpx.
Moving images between a registry and the local store is :mod:`lamina.transfer.pull`
and :mod:`lamina.transfer.push`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamina.registry.auth import Challenge, Token, TokenCache, parse_www_authenticate
    from lamina.registry.client import BlobUpload, FetchedManifest, RegistryClient, UploadStream
    from lamina.registry.config import Endpoint, RegistryConfig, is_loopback
    from lamina.registry.credentials import Credential, CredentialsError, CredentialStore
    from lamina.registry.progress import ListReporter, NullReporter, ProgressEvent, Reporter

__all__ = [
    "BlobUpload",
    "Challenge",
    "Credential",
    "CredentialStore",
    "CredentialsError",
    "Endpoint",
    "FetchedManifest",
    "ListReporter",
    "NullReporter",
    "ProgressEvent",
    "RegistryClient",
    "RegistryConfig",
    "Reporter",
    "Token",
    "TokenCache",
    "UploadStream",
    "is_loopback",
    "parse_www_authenticate",
]

_WHERE = {
    "Challenge": "auth", "Token": "auth", "TokenCache": "auth", "parse_www_authenticate": "auth",
    "BlobUpload": "client", "FetchedManifest": "client", "RegistryClient": "client",
    "UploadStream": "client",
    "Endpoint": "config", "RegistryConfig": "config", "is_loopback": "config",
    "Credential": "credentials", "CredentialStore": "credentials", "CredentialsError": "credentials",
    "ListReporter": "progress", "NullReporter": "progress", "ProgressEvent": "progress",
    "Reporter": "progress",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lamina.registry.{module}"), name)
    globals()[name] = value
    return value
