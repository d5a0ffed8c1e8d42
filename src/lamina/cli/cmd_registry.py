"""Registry verbs: pull, push, login, logout.

Output follows Docker's: ``pull`` prints ``TAG: Pulling from REPO``, a line per
layer status, ``Digest: …``, ``Status: …`` and finally the full image name; ``push``
prints ``The push refers to repository […]``, layer statuses and
``TAG: digest: … size: …``.  On a terminal the byte progress of each layer is drawn
as a bar (rich); elsewhere only the status lines are printed, as Docker does.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lamina.images.store import ImageStore
    from lamina.registry.progress import ProgressEvent

__all__ = ["commands"]

_DONE = ("Pull complete", "Already exists", "Pushed", "Layer already exists", "Download complete")


def _store(ctx: click.Context) -> ImageStore:
    from lamina.images.store import ImageStore

    store = ImageStore(ctx.obj["root"])
    ctx.call_on_close(store.close)
    return store


class _PlainRenderer:
    """Status lines only (no byte counts), one per event: Docker's non-TTY output."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def report(self, event: ProgressEvent) -> None:
        if event.current is not None:
            return
        with self._lock:
            click.echo(event.line)

    def close(self) -> None:
        return None


class _RichRenderer:
    """One live line per layer with a bar while bytes move (rich, on a terminal)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  DownloadColumn(), transient=False)
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._progress.start()

    def report(self, event: ProgressEvent) -> None:
        with self._lock:
            if not event.id or event.status.startswith("Pulling from"):
                self._progress.console.print(event.line, highlight=False)
                return
            task = self._tasks.get(event.id)
            if task is None:
                task = self._progress.add_task(event.line, total=None)
                self._tasks[event.id] = task
            kwargs: dict[str, Any] = {"description": f"{event.id}: {event.status}"}
            if event.total is not None:
                kwargs["total"] = event.total
            if event.current is not None:
                kwargs["completed"] = event.current
            elif event.status in _DONE:
                total = self._progress.tasks[task].total
                kwargs["completed"] = total if total is not None else 0
                kwargs["total"] = total if total is not None else 0
            self._progress.update(task, **kwargs)

    def close(self) -> None:
        self._progress.stop()


def _renderer(quiet: bool) -> Any:
    from lamina.registry.progress import NullReporter

    if quiet:
        return NullReporter()
    if sys.stdout.isatty():
        return _RichRenderer()
    return _PlainRenderer()


# --- pull --------------------------------------------------------------------------


@click.command("pull")
@click.option("--platform", default=None, metavar="OS/ARCH[/VARIANT]",
              help="Pull the image for this platform (default: this host's).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--max-concurrent-downloads", "concurrent", default=3, show_default=True,
              type=click.IntRange(1, 32), help="Layers downloaded at once.")
@click.argument("name")
@click.pass_context
def pull_cmd(ctx: click.Context, platform: str | None, quiet: bool, concurrent: int,
             name: str) -> None:
    """Pull an image (NAME[:TAG|@DIGEST]) from a registry."""
    from lamina.oci import Platform
    from lamina.transfer.pull import PullOptions, pull

    store = _store(ctx)
    reporter = _renderer(quiet)
    try:
        result = pull(store, name, PullOptions(
            platform=Platform.parse(platform) if platform else None,
            max_concurrent=concurrent, reporter=reporter))
    finally:
        if hasattr(reporter, "close"):
            reporter.close()
    click.echo(result.name)


# --- push --------------------------------------------------------------------------


@click.command("push")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--manifest-format", "fmt", type=click.Choice(["docker", "oci"]), default="docker",
              show_default=True, help="Manifest format for images built or imported here.")
@click.option("--chunk-size", default=None, type=click.IntRange(1 << 10),
              help="Upload blobs in PATCH chunks of this many bytes (default: monolithic).")
@click.argument("name")
@click.pass_context
def push_cmd(ctx: click.Context, quiet: bool, fmt: str, chunk_size: int | None, name: str) -> None:
    """Push an image (NAME[:TAG]) to a registry."""
    from lamina.transfer.push import PushOptions, push

    store = _store(ctx)
    reporter = _renderer(quiet)
    try:
        result = push(store, name, PushOptions(
            manifest_format="oci" if fmt == "oci" else "docker", chunk_size=chunk_size,
            reporter=reporter))
    finally:
        if hasattr(reporter, "close"):
            reporter.close()
    if quiet:
        click.echo(result.name)


# --- login / logout ----------------------------------------------------------------


def _server(server: str | None) -> tuple[str, str]:
    """(reference domain to connect to, name to show) for a ``login`` argument."""
    from lamina.registry.credentials import DOCKER_HUB_KEY, registry_key

    if not server:
        return "docker.io", DOCKER_HUB_KEY
    key = registry_key(server)
    if key == DOCKER_HUB_KEY:
        return "docker.io", DOCKER_HUB_KEY
    return key, key


@click.command("login")
@click.option("-u", "--username", default=None, help="Username.")
@click.option("-p", "--password", default=None, help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.argument("server", required=False)
@click.pass_context
def login_cmd(ctx: click.Context, username: str | None, password: str | None,
              password_stdin: bool, server: str | None) -> None:
    """Log in to a registry (default: Docker Hub); saved in Docker's config.json."""
    from lamina.errors import InvalidArgument
    from lamina.registry.config import RegistryConfig
    from lamina.registry.credentials import Credential, CredentialStore

    domain, _ = _server(server)
    if password is not None and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password is not None:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
                   err=True)
    if password_stdin:
        if username is None:
            raise InvalidArgument("must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    store = CredentialStore()
    if username is None or password is None:
        if not sys.stdin.isatty():
            existing = store.get(domain)
            if existing is None or username is not None:
                raise InvalidArgument("Cannot perform an interactive login from a non TTY device",
                                      hint="pass -u USER --password-stdin")
            credential = existing
        else:
            if username is None:
                username = click.prompt("Username", type=str)
            password = click.prompt("Password", hide_input=True, type=str)
            credential = Credential(username or "", password or "")
    else:
        credential = Credential(username, password)
    from lamina.registry.client import RegistryClient

    config = RegistryConfig.load(ctx.obj["root"])
    with RegistryClient(domain, config=config, credential=credential, push=True) as client:
        identity = client.login()
    saved = Credential(credential.username, "", identity) if identity else credential
    where = store.store(domain, saved)
    if not isinstance(where, str):
        click.echo(f"WARNING! Your password will be stored unencrypted in {where}.", err=True)
    click.echo("Login Succeeded")


@click.command("logout")
@click.argument("server", required=False)
def logout_cmd(server: str | None) -> None:
    """Log out from a registry (default: Docker Hub)."""
    from lamina.registry.credentials import CredentialStore

    domain, shown = _server(server)
    if CredentialStore().erase(domain):
        click.echo(f"Removing login credentials for {shown}")
    else:
        click.echo(f"Not logged in to {shown}")


commands: dict[str, click.Command] = {
    "pull": pull_cmd,
    "push": push_cmd,
    "login": login_cmd,
    "logout": logout_cmd,
}
