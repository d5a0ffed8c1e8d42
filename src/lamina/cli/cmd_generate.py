"""``generate kube``: Kubernetes YAML (a Deployment and a Service) for an image or container.

What a workload runs is gathered into a :class:`Workload` -- from an image's config
(:func:`workload_from_image`: entrypoint, cmd, env, exposed ports, volumes, working
dir, numeric user) or from a container (:func:`workload_from_container`, which adds
the container's published ports and bind mounts) -- and :func:`kube_documents` turns
it into plain dicts that follow the Kubernetes API:

* ``apps/v1`` ``Deployment``: one replica, ``app: <name>`` labels matched by the
  selector, one container; each volume becomes an ``emptyDir`` (anonymous or image
  volumes) or a ``hostPath`` (bind mounts) with a ``volumeMount``;
* ``v1`` ``Service`` (only when ports are known): ``ClusterIP``, one named port per
  container port, targeting it by number.

Names are made DNS-1123 labels (lower case, ``a-z0-9-``, at most 63 characters), as
Kubernetes requires of object, container, port and volume names.  The functions are
pure; only the click command prints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lamina.images.store import ImageStore

__all__ = [
    "KubeVolume",
    "Workload",
    "command",
    "dns_label",
    "kube_documents",
    "render_yaml",
    "workload_from_container",
    "workload_from_image",
]


@dataclass(frozen=True)
class KubeVolume:
    """A directory the workload needs: ``host_path`` None means an ``emptyDir``."""

    mount_path: str
    host_path: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class Workload:
    """What one container runs, in the terms a Kubernetes pod spec needs."""

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[tuple[int, str], ...] = ()  # (container port, "TCP"/"UDP"/"SCTP")
    volumes: tuple[KubeVolume, ...] = ()
    working_dir: str = ""
    run_as_user: int | None = None
    run_as_group: int | None = None


def dns_label(text: str, fallback: str = "app") -> str:
    """``text`` as a DNS-1123 label: lower case alphanumerics and ``-``, 1-63 characters.

    >>> dns_label("Team/My_App:1.0")
    'my-app'
    """
    base = text.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    label = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:63].strip("-")
    return label or fallback


def _env_pairs(env: Sequence[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in env:
        key, _, value = item.partition("=")
        if key:
            out.append((key, value))
    return tuple(out)


def _ports(specs: Sequence[str]) -> tuple[tuple[int, str], ...]:
    """``80/tcp``-style exposed ports → ``(80, "TCP")``; ranges and junk are skipped."""
    out: list[tuple[int, str]] = []
    for spec in specs:
        port, _, proto = spec.partition("/")
        if not port.isdigit() or not 0 < int(port) < 65536:
            continue
        entry = (int(port), (proto or "tcp").upper())
        if entry not in out:
            out.append(entry)
    return tuple(out)


def _user(user: str) -> tuple[int | None, int | None]:
    uid, _, gid = user.partition(":")
    return (int(uid) if uid.isdigit() else None, int(gid) if gid.isdigit() else None)


def workload_from_image(store: ImageStore, name: str) -> Workload:
    """The workload of image ``name`` as its config describes it."""
    from lamina.reference import parse_reference

    img = store.resolve(name)
    cfg = img.config.config
    try:
        ref = parse_reference(name)
        image = ref.familiar if ref.domain != "docker.io" else str(ref)
        label = dns_label(ref.path)
    except Exception:  # an image ID: name the image by it
        image, label = name, dns_label(img.id.hex[:12], "image")
    uid, gid = _user(cfg.user)
    return Workload(
        name=label, image=image, command=tuple(cfg.entrypoint), args=tuple(cfg.cmd),
        env=_env_pairs(cfg.env), ports=_ports(cfg.exposed_ports),
        volumes=tuple(KubeVolume(v) for v in sorted(cfg.volumes)),
        working_dir=cfg.working_dir, run_as_user=uid, run_as_group=gid)


def workload_from_container(store: ImageStore, ident: str) -> Workload | None:
    """The workload of container ``ident``, or None when there is no such container.

    This is the seam to :mod:`lamina.containers` (another part of lamina), imported
    here only and read through ``ContainerStore(store).get(ident)``, a container with
    a ``name`` and a ``spec`` (``ContainerSpec``: image, entrypoint, args, env, ports,
    mounts, working dir, user).  If that package is missing or has another shape,
    containers are simply not found and the target is looked up as an image.
    """
    try:
        from lamina.containers import ContainerStore
    except ImportError:
        return None
    try:
        cstore: Any = ContainerStore(store)
        container: Any = cstore.get(ident, reconcile=False)
    except (LookupError, AttributeError, TypeError):
        return None
    spec = getattr(container, "spec", None)
    if spec is None:
        return None
    name = dns_label(str(getattr(container, "name", "") or getattr(getattr(container, "record", None),
                                                                   "name", "") or spec.image))
    volumes = []
    for m in getattr(spec, "mounts", ()):
        if m.type == "bind":
            volumes.append(KubeVolume(m.target, m.source, bool(m.readonly)))
        elif m.type in ("volume", "tmpfs"):
            volumes.append(KubeVolume(m.target, None, bool(m.readonly)))
    ports = tuple(dict.fromkeys((p.container_port, p.proto.upper()) for p in spec.ports))
    uid, gid = _user(spec.user)
    entry = (spec.entrypoint,) if spec.entrypoint else ()
    return Workload(
        name=name, image=spec.image, command=entry, args=tuple(spec.args or ()),
        env=_env_pairs(spec.env), ports=ports, volumes=tuple(volumes),
        working_dir=spec.working_dir, run_as_user=uid, run_as_group=gid)


def kube_documents(w: Workload, *, replicas: int = 1, service: bool = True) -> list[dict[str, Any]]:
    """The Deployment (and, when there are ports and ``service``, the Service) for ``w``."""
    labels = {"app": w.name}
    container: dict[str, Any] = {"name": w.name, "image": w.image}
    if w.command:
        container["command"] = list(w.command)
    if w.args:
        container["args"] = list(w.args)
    if w.working_dir:
        container["workingDir"] = w.working_dir
    if w.env:
        container["env"] = [{"name": k, "value": v} for k, v in w.env]
    if w.ports:
        container["ports"] = [{"containerPort": p, "protocol": proto} for p, proto in w.ports]
    security: dict[str, Any] = {}
    if w.run_as_user is not None:
        security["runAsUser"] = w.run_as_user
    if w.run_as_group is not None:
        security["runAsGroup"] = w.run_as_group
    if security:
        container["securityContext"] = security
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for i, v in enumerate(w.volumes):
        vname = f"{dns_label(v.mount_path, 'data')[:50]}-{i}"
        mount: dict[str, Any] = {"name": vname, "mountPath": v.mount_path}
        if v.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
        if v.host_path is None:
            volumes.append({"name": vname, "emptyDir": {}})
        else:
            volumes.append({"name": vname, "hostPath": {"path": v.host_path,
                                                        "type": "DirectoryOrCreate"}})
    if mounts:
        container["volumeMounts"] = mounts
    pod: dict[str, Any] = {"containers": [container]}
    if volumes:
        pod["volumes"] = volumes
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": w.name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }
    docs: list[dict[str, Any]] = [deployment]
    if service and w.ports:
        docs.append({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": w.name, "labels": dict(labels)},
            "spec": {
                "type": "ClusterIP",
                "selector": dict(labels),
                "ports": [{"name": f"{p}-{proto.lower()}", "port": p, "targetPort": p,
                           "protocol": proto} for p, proto in w.ports],
            },
        })
    return docs


def render_yaml(docs: Sequence[dict[str, Any]]) -> str:
    """The documents as one multi-document YAML stream (keys in the order built)."""
    import yaml

    return yaml.safe_dump_all(list(docs), sort_keys=False, default_flow_style=False,
                              explicit_start=True)


@click.group("generate")
def command() -> None:
    """Generate configuration for other tools from containers and images."""


@command.command("kube")
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(0),
              help="Replicas of the Deployment.")
@click.option("--service/--no-service", default=True, show_default=True,
              help="Also write a Service for the ports.")
@click.option("-f", "--filename", default=None, help="Write the YAML to this file.")
@click.argument("target")
@click.pass_context
def kube_cmd(ctx: click.Context, replicas: int, service: bool, filename: str | None,
             target: str) -> None:
    """Kubernetes Deployment (and Service) YAML for a CONTAINER or IMAGE."""
    from lamina.errors import ImageNotFound, InvalidArgument
    from lamina.images.store import ImageStore

    with ImageStore(ctx.obj["root"]) as store:
        workload = workload_from_container(store, target)
        if workload is None:
            try:
                workload = workload_from_image(store, target)
            except ImageNotFound:
                raise ImageNotFound(f"no such container or image: {target}",
                                    hint="name a container (lamina ps -a) or an image (lamina images)"
                                    ) from None
    text = render_yaml(kube_documents(workload, replicas=replicas, service=service))
    if filename:
        try:
            with open(filename, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise InvalidArgument(f"cannot write {filename}: {exc.strerror}") from exc
    else:
        click.echo(text, nl=False)
