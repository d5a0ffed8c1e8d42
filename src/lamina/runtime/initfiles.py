"""The per-container ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``.

Docker gives each container its own copies of these three files: they live in the
container's directory on the host and are bind-mounted over the image's files, so they
never end up in the container's writable layer (nor in an image committed from it).
:func:`write_init_files` writes them and returns the :class:`BindMount` values to add
to the container's config.

* ``hosts``: the loopback names, plus ``<ip> <hostname>`` when the container has an
  address (``127.0.0.1 <hostname>``-style entries are left to the caller's
  ``extra_hosts``); with host networking, a copy of the host's file.
* ``resolv.conf``: the host's file.  In a private network namespace the host's
  loopback name servers (``127.0.0.53`` of systemd-resolved, say) are unreachable, so
  they are dropped, and when none is left Docker's fallback (Google's public DNS) is
  used.  With host networking the host's file is copied as is.
* ``hostname``: the hostname and a newline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .spec import BindMount

__all__ = ["DEFAULT_NAMESERVERS", "filter_resolv_conf", "hosts_content", "write_init_files"]

#: Docker's fallback name servers when the host has only loopback ones.
DEFAULT_NAMESERVERS: tuple[str, ...] = ("8.8.8.8", "8.8.4.4")

_LOOPBACK_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


def hosts_content(
    hostname: str,
    *,
    ip: str | None = None,
    extra_hosts: Sequence[tuple[str, str]] = (),
) -> str:
    """The text of a container's ``/etc/hosts`` (``extra_hosts`` are ``(name, ip)``)."""
    lines = [_LOOPBACK_HOSTS]
    for name, addr in extra_hosts:
        lines.append(f"{addr}\t{name}\n")
    if ip and hostname:
        lines.append(f"{ip}\t{hostname}\n")
    return "".join(lines)


def _is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1"


def filter_resolv_conf(text: str) -> str:
    """Drop loopback ``nameserver`` lines; fall back to Docker's servers if none remain."""
    kept: list[str] = []
    servers = 0
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            if _is_loopback(words[1]):
                continue
            servers += 1
        kept.append(line)
    if servers == 0:
        kept.extend(f"nameserver {ns}" for ns in DEFAULT_NAMESERVERS)
    return "\n".join(kept) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_init_files(
    directory: str | os.PathLike[str],
    *,
    hostname: str,
    network: str = "none",
    ip: str | None = None,
    extra_hosts: Sequence[tuple[str, str]] = (),
    host_etc: str | os.PathLike[str] = "/etc",
    readonly: bool = False,
) -> tuple[BindMount, ...]:
    """Write ``hosts``, ``resolv.conf`` and ``hostname`` into ``directory``.

    Returns the bind mounts that place them at ``/etc/...`` in the container.
    ``host_etc`` is where the host's ``hosts`` and ``resolv.conf`` are read from.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    etc = Path(host_etc)

    def host_file(name: str) -> str:
        try:
            return (etc / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    if network == "host":
        hosts = host_file("hosts") or hosts_content(hostname, extra_hosts=extra_hosts)
        resolv = host_file("resolv.conf") or filter_resolv_conf("")
    else:
        hosts = hosts_content(hostname, ip=ip, extra_hosts=extra_hosts)
        resolv = filter_resolv_conf(host_file("resolv.conf"))
    _write(d / "hosts", hosts)
    _write(d / "resolv.conf", resolv)
    _write(d / "hostname", hostname + "\n")
    return tuple(
        BindMount(str(d / name), f"/etc/{name}", readonly=readonly)
        for name in ("hostname", "hosts", "resolv.conf")
    )
