"""The facade: one object for everything lamina does, for Python callers and the CLI.

>>> from lamina.engine import Engine                       # doctest: +SKIP
>>> with Engine("/tmp/lamina-root") as eng:                 # doctest: +SKIP
...     eng.images.import_tar(open("rootfs.tar", "rb"), names=["base:1"])
...     result = eng.build(BuildOptions(context=Path("app"), tags=("app:1",)))
...     eng.containers.run(...)

Each part is created on first use, so an ``Engine`` costs nothing until asked.  The
packages below stay usable on their own; this module only wires them together:

* :attr:`Engine.images` -- :class:`lamina.images.store.ImageStore` (import, load, save,
  tag, rmi, prune);
* :attr:`Engine.containers` -- :class:`lamina.containers.store.ContainerStore`;
* :meth:`Engine.build` -- :func:`lamina.build.builder.build`;
* :meth:`Engine.pull` / :meth:`Engine.push` -- :mod:`lamina.transfer`.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamina.build.options import BuildOptions
    from lamina.build.progress import Reporter
    from lamina.containers.store import ContainerStore
    from lamina.images.store import ImageStore

__all__ = ["Engine", "default_root"]


def default_root() -> Path:
    """The store root: ``$LAMINA_ROOT``, else /var/lib/lamina for root, else XDG data."""
    env = os.environ.get("LAMINA_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/lamina")
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "lamina"


class Engine:
    """lamina over one store root (default: :func:`default_root`)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    @cached_property
    def images(self) -> ImageStore:
        from lamina.images.store import ImageStore

        return ImageStore(self.root)

    @cached_property
    def containers(self) -> ContainerStore:
        from lamina.containers.store import ContainerStore

        return ContainerStore(self.images)

    def build(self, options: BuildOptions, reporter: Reporter | None = None) -> Any:
        """Build an image; returns :class:`lamina.build.options.BuildResult`."""
        from lamina.build.builder import build
        from lamina.build.progress import ListReporter

        return build(self.images, options, reporter if reporter is not None else ListReporter())

    def pull(self, name: str, **options: Any) -> Any:
        """Pull ``name`` from its registry; ``options`` are :class:`PullOptions` fields."""
        from lamina.transfer.pull import PullOptions, pull

        return pull(self.images, name, PullOptions(**options))

    def push(self, name: str, **options: Any) -> Any:
        """Push ``name`` to its registry; ``options`` are :class:`PushOptions` fields."""
        from lamina.transfer.push import PushOptions, push

        return push(self.images, name, PushOptions(**options))

    def close(self) -> None:
        if "images" in self.__dict__:
            self.images.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
