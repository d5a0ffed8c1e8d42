"""Where a registry is reached: mirrors, HTTP or HTTPS, TLS verification.

A reference's domain (``docker.io``, ``ghcr.io``, ``127.0.0.1:5000``) names a
registry; :meth:`RegistryConfig.endpoints` turns it into the base URLs to try, in
order, following Docker's rules:

* ``docker.io`` is served at ``https://registry-1.docker.io``; pulls try each of
  ``registry-mirrors`` first (pushes never go to a mirror);
* a loopback registry (``localhost``, ``127.0.0.0/8``, ``::1``) is spoken to over
  plain HTTP, as Docker allows without configuration;
* a registry listed in ``insecure-registries`` (a host, ``host:port`` or an
  IP network in CIDR form) is tried over HTTPS without certificate checks and then
  over HTTP;
* every other registry is HTTPS with verified certificates.

The settings come from ``<store root>/config.json`` -- the same keys as Docker's
``daemon.json``::

    {"registry-mirrors": ["http://127.0.0.1:5001"],
     "insecure-registries": ["registry.lan:5000", "10.0.0.0/8"]}

-- plus the environment: ``LAMINA_REGISTRY_MIRRORS`` and
``LAMINA_INSECURE_REGISTRIES`` (comma-separated) add to the file's lists.

>>> cfg = RegistryConfig()
>>> [e.url for e in cfg.endpoints("127.0.0.1:5000")]
['http://127.0.0.1:5000']
>>> [e.url for e in cfg.endpoints("ghcr.io")]
['https://ghcr.io']
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import InvalidArgument

__all__ = ["DOCKER_HUB_ENDPOINT", "Endpoint", "RegistryConfig", "is_loopback"]

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
_HUB_DOMAINS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Endpoint:
    """One base URL to reach a registry at.

    ``registry`` is the name the user gave (a reference's domain) and keys the
    credentials; ``host`` is the ``host[:port]`` actually contacted.  ``tls_verify``
    is False for insecure registries; ``http_fallback`` says an HTTPS failure may be
    retried over plain HTTP; ``mirror`` marks a pull-through mirror.
    """

    registry: str
    url: str
    tls_verify: bool = True
    http_fallback: bool = False
    mirror: bool = False

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1].split("/", 1)[0]

    @property
    def secure(self) -> bool:
        return self.url.startswith("https://")


def _split_host(hostport: str) -> str:
    """The host part of ``host[:port]`` (IPv6 brackets removed)."""
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def is_loopback(hostport: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1`` (any port).

    >>> is_loopback("127.0.0.1:5000"), is_loopback("localhost"), is_loopback("10.0.0.1")
    (True, True, False)
    """
    host = _split_host(hostport).lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in os.environ.get(name, "").split(",") if x.strip())


@dataclass(frozen=True)
class RegistryConfig:
    """Mirrors and insecure registries (see the module doc)."""

    mirrors: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()

    @classmethod
    def load(cls, root: Path | str | None = None,
             environ: Mapping[str, str] | None = None) -> RegistryConfig:
        """Read ``<root>/config.json`` (if there is one) and the environment."""
        mirrors: list[str] = []
        insecure: list[str] = []
        if root is not None:
            path = Path(root) / CONFIG_FILE
            try:
                data = json.loads(path.read_text("utf-8"))
            except FileNotFoundError:
                data = {}
            except (OSError, json.JSONDecodeError) as exc:
                raise InvalidArgument(f"cannot read registry settings from {path}: {exc}",
                                      hint="fix the file: it holds JSON like Docker's daemon.json") from exc
            if not isinstance(data, dict):
                raise InvalidArgument(f"{path} is not a JSON object",
                                      hint="write {\"registry-mirrors\": [...], \"insecure-registries\": [...]}")
            for key, out in (("registry-mirrors", mirrors), ("insecure-registries", insecure)):
                value = data.get(key, [])
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise InvalidArgument(f"{path}: {key} must be a list of strings")
                out.extend(value)
        env = os.environ if environ is None else environ
        mirrors.extend(x.strip() for x in env.get("LAMINA_REGISTRY_MIRRORS", "").split(",") if x.strip())
        insecure.extend(x.strip() for x in env.get("LAMINA_INSECURE_REGISTRIES", "").split(",")
                        if x.strip())
        return cls(tuple(mirrors), tuple(insecure))

    def is_insecure(self, hostport: str) -> bool:
        """True if ``hostport`` is listed (by name or by an IP network it falls in)."""
        host = _split_host(hostport)
        for entry in self.insecure:
            entry = entry.removeprefix("http://").removeprefix("https://").rstrip("/")
            if entry in (hostport, host):
                return True
            if "/" in entry:
                try:
                    if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    continue
        return False

    def _endpoint(self, registry: str, hostport: str, *, mirror: bool = False) -> Endpoint:
        if is_loopback(hostport):
            return Endpoint(registry, f"http://{hostport}", tls_verify=False, mirror=mirror)
        if self.is_insecure(hostport):
            return Endpoint(registry, f"https://{hostport}", tls_verify=False, http_fallback=True,
                            mirror=mirror)
        return Endpoint(registry, f"https://{hostport}", mirror=mirror)

    def endpoints(self, registry: str, *, push: bool = False) -> list[Endpoint]:
        """The base URLs to try for ``registry``, in order (see the module doc)."""
        out: list[Endpoint] = []
        if registry in _HUB_DOMAINS:
            if not push:
                for m in self.mirrors:
                    out.append(self._mirror(registry, m))
            out.append(Endpoint(registry, f"https://{DOCKER_HUB_ENDPOINT}"))
            return out
        return [self._endpoint(registry, registry)]

    def _mirror(self, registry: str, url: str) -> Endpoint:
        url = url.rstrip("/")
        if "://" not in url:
            return self._endpoint(registry, url, mirror=True)
        scheme, rest = url.split("://", 1)
        if scheme not in ("http", "https"):
            raise InvalidArgument(f"registry mirror {url!r}: unsupported scheme {scheme!r}",
                                  hint="a mirror is http://host[:port] or https://host[:port]")
        verify = scheme == "https" and not self.is_insecure(rest)
        return Endpoint(registry, f"{scheme}://{rest}", tls_verify=verify, mirror=True)
