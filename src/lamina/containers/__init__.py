"""Containers and volumes: create, run, inspect and remove them (level 4).

* :class:`ContainerStore` -- the containers of a lamina root: ``create``, ``run``
  (foreground), ``kill``/``stop``/``wait``, ``remove``, ``diff``, ``commit``,
  ``export``, ``copy_from``/``copy_to``; see :mod:`lamina.containers.store` for how a
  container is laid out (snapshots, init layer, bundle) and how its state is kept.
* :class:`ContainerSpec` and the ``docker run`` flag parsers -- :mod:`lamina.containers.spec`.
* :class:`VolumeStore` -- named and anonymous volumes -- :mod:`lamina.containers.volumes`.
* :mod:`lamina.containers.fs` -- safe file access inside a container's root.

Submodules are imported on first use, so ``import lamina.containers`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamina.containers.spec import ContainerSpec, MountSpec, PortSpec, Resources
    from lamina.containers.store import Container, ContainerStore
    from lamina.containers.volumes import VolumeStore

__all__ = [
    "Container",
    "ContainerSpec",
    "ContainerStore",
    "MountSpec",
    "PortSpec",
    "Resources",
    "VolumeStore",
]

_WHERE = {
    "Container": "store",
    "ContainerStore": "store",
    "ContainerSpec": "spec",
    "MountSpec": "spec",
    "PortSpec": "spec",
    "Resources": "spec",
    "VolumeStore": "volumes",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina.containers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lamina.containers.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
