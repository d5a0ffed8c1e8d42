"""Registry credentials in Docker's ``config.json``, so an existing ``docker login`` works.

Docker keeps logins in ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``)::

    {
      "auths": {
        "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
        "127.0.0.1:5000": {"auth": "…", "identitytoken": "…"}
      },
      "credsStore": "pass",                    # every registry: docker-credential-pass
      "credHelpers": {"gcr.io": "gcloud"}      # one registry: docker-credential-gcloud
    }

``auth`` is ``base64(username:password)``; ``identitytoken`` is an OAuth2 refresh
token some registries hand out at login.  A *credential helper* is a program
``docker-credential-<name>`` speaking a tiny protocol on stdin/stdout:

=========  =====================================  ==========================================
verb       stdin                                  stdout
=========  =====================================  ==========================================
``get``    the server URL                         ``{"ServerURL","Username","Secret"}``
``store``  ``{"ServerURL","Username","Secret"}``  (nothing)
``erase``  the server URL                         (nothing)
=========  =====================================  ==========================================

A ``Username`` of ``<token>`` means ``Secret`` is an identity token.  Lookup order
is Docker's: ``credHelpers[host]``, then ``credsStore``, then the ``auths`` entry.
Keys in ``auths`` are matched by host (``https://host/v2/`` and ``host`` are the same
registry); Docker Hub's key is ``https://index.docker.io/v1/``.

Writing keeps every other key of the file as it was, writes atomically and leaves
the file readable by its owner only.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.errors import InvalidArgument, LaminaError

__all__ = [
    "DOCKER_HUB_KEY",
    "Credential",
    "CredentialStore",
    "CredentialsError",
    "config_dir",
    "registry_key",
]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
"""The key Docker files Docker Hub credentials under."""
_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_TOKEN_USER = "<token>"


class CredentialsError(LaminaError):
    """The credentials file or a credential helper could not be read or written."""

    code = "credentials"


@dataclass(frozen=True)
class Credential:
    """What to authenticate with: a username and password, or an identity token."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:  # never show secrets in tracebacks or logs
        return f"Credential(username={self.username!r}, password=***, identity_token=***)"

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)


def config_dir() -> Path:
    """``$DOCKER_CONFIG``, else ``~/.docker``."""
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


def _host_of(key: str) -> str:
    """``https://host:5000/v2/`` → ``host:5000`` (Docker's ConvertToHostname)."""
    text = key
    for prefix in ("http://", "https://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    return text.split("/", 1)[0]


def registry_key(registry: str) -> str:
    """The ``auths`` key Docker uses for ``registry`` (a reference's domain).

    >>> registry_key("docker.io"), registry_key("127.0.0.1:5000")
    ('https://index.docker.io/v1/', '127.0.0.1:5000')
    """
    host = _host_of(registry)
    return DOCKER_HUB_KEY if host in _HUB_HOSTS else host


class CredentialStore:
    """Docker's credentials file (and its helpers) under ``directory`` (see module doc).

    ``helper_prefix`` is the helper program prefix (tests point it elsewhere).
    """

    def __init__(self, directory: Path | None = None, *,
                 helper_prefix: str = "docker-credential-") -> None:
        self.directory = Path(directory) if directory is not None else config_dir()
        self.path = self.directory / "config.json"
        self.helper_prefix = helper_prefix

    # --- the file ------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CredentialsError(f"cannot read {self.path}: {exc.strerror}",
                                   hint="check the file's permissions or set DOCKER_CONFIG") from exc
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CredentialsError(f"{self.path} is not valid JSON: {exc.msg} (line {exc.lineno})",
                                   hint="fix or remove the file, then log in again") from exc
        if not isinstance(data, dict):
            raise CredentialsError(f"{self.path} is not a JSON object",
                                   hint="fix or remove the file, then log in again")
        return data

    def _save(self, data: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=self.directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent="\t")
                    fh.write("\n")
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise CredentialsError(f"cannot write {self.path}: {exc.strerror}",
                                   hint="check the directory's permissions or set DOCKER_CONFIG") from exc

    @staticmethod
    def _auths(data: dict[str, Any]) -> dict[str, Any]:
        auths = data.get("auths")
        return auths if isinstance(auths, dict) else {}

    def _helper_for(self, data: dict[str, Any], key: str) -> str | None:
        helpers = data.get("credHelpers")
        if isinstance(helpers, dict):
            for k, name in helpers.items():
                if _host_of(k) == _host_of(key) and isinstance(name, str) and name:
                    return name
        store = data.get("credsStore")
        return store if isinstance(store, str) and store else None

    def _entry(self, data: dict[str, Any], key: str) -> tuple[str, dict[str, Any]] | None:
        auths = self._auths(data)
        if key in auths and isinstance(auths[key], dict):
            return key, auths[key]
        for k, v in auths.items():
            if isinstance(v, dict) and registry_key(k) == key:
                return k, v
        return None

    # --- helpers -------------------------------------------------------------------

    def _run_helper(self, name: str, verb: str, stdin: str) -> str | None:
        """Run ``docker-credential-<name> <verb>``; None when it has no such entry."""
        program = self.helper_prefix + name
        try:
            proc = subprocess.run([program, verb], input=stdin, capture_output=True,
                                  text=True, timeout=60, check=False)
        except FileNotFoundError:
            raise CredentialsError(
                f"credential helper {program} is not installed",
                hint=f"install it, or remove '{name}' from credsStore/credHelpers in {self.path}",
            ) from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CredentialsError(f"credential helper {program} failed: {exc}") from exc
        if proc.returncode != 0:
            said = (proc.stdout.strip() or proc.stderr.strip())
            if "not found" in said.lower():
                return None
            raise CredentialsError(f"credential helper {program} {verb} failed: {said or proc.returncode}",
                                   hint="check the helper's own configuration")
        return proc.stdout

    # --- the API -------------------------------------------------------------------

    def get(self, registry: str) -> Credential | None:
        """The credential stored for ``registry`` (a host or a reference domain), if any."""
        key = registry_key(registry)
        data = self._load()
        helper = self._helper_for(data, key)
        if helper is not None:
            found = self._helper_get(helper, key)
            if found is not None:
                return found
        entry = self._entry(data, key)
        if entry is None:
            return None
        return self._decode(entry[0], entry[1])

    def _helper_get(self, helper: str, key: str) -> Credential | None:
        out = self._run_helper(helper, "get", key)
        if out is None:
            # helpers store Docker Hub under its key, others under the bare host
            if key != _host_of(key):
                out = self._run_helper(helper, "get", _host_of(key))
            if out is None:
                return None
        try:
            obj = json.loads(out)
        except json.JSONDecodeError as exc:
            raise CredentialsError(f"credential helper {self.helper_prefix}{helper} printed invalid JSON",
                                   hint="check the helper's version") from exc
        user, secret = str(obj.get("Username", "")), str(obj.get("Secret", ""))
        if not user and not secret:
            return None
        if user == _TOKEN_USER:
            return Credential(identity_token=secret)
        return Credential(user, secret)

    def _decode(self, key: str, entry: dict[str, Any]) -> Credential | None:
        token = entry.get("identitytoken") if isinstance(entry.get("identitytoken"), str) else ""
        auth = entry.get("auth")
        user, password = "", ""
        if isinstance(auth, str) and auth:
            try:
                raw = base64.b64decode(auth, validate=False).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise CredentialsError(f"{self.path}: the auth of {key} is not valid base64",
                                       hint=f"log in to {key} again") from exc
            user, sep, password = raw.partition(":")
            if not sep:
                raise CredentialsError(f"{self.path}: the auth of {key} has no ':'",
                                       hint=f"log in to {key} again")
        else:
            user = str(entry.get("username", "") or "")
            password = str(entry.get("password", "") or "")
        cred = Credential(user, password, str(token or ""))
        return None if cred.empty else cred

    def store(self, registry: str, credential: Credential) -> Path | str:
        """Save ``credential`` for ``registry``; returns where (the file, or the helper name)."""
        if credential.empty:
            raise InvalidArgument("refusing to store an empty credential")
        key = registry_key(registry)
        data = self._load()
        helper = self._helper_for(data, key)
        if helper is not None:
            user = _TOKEN_USER if credential.identity_token else credential.username
            secret = credential.identity_token or credential.password
            self._run_helper(helper, "store",
                             json.dumps({"ServerURL": key, "Username": user, "Secret": secret}))
            auths = data.setdefault("auths", {})
            if isinstance(auths, dict):
                existing = self._entry(data, key)
                if existing is not None:
                    auths.pop(existing[0])
                auths[key] = {}
                self._save(data)
            return helper
        auths = data.get("auths")
        if not isinstance(auths, dict):
            auths = data["auths"] = {}
        existing = self._entry(data, key)
        if existing is not None:
            auths.pop(existing[0])
        entry: dict[str, Any] = {}
        if credential.username or credential.password:
            raw = f"{credential.username}:{credential.password}".encode()
            entry["auth"] = base64.b64encode(raw).decode("ascii")
        if credential.identity_token:
            entry["identitytoken"] = credential.identity_token
        auths[key] = entry
        self._save(data)
        return self.path

    def erase(self, registry: str) -> bool:
        """Forget ``registry``'s credential; False if there was none to forget."""
        key = registry_key(registry)
        data = self._load()
        found = False
        helper = self._helper_for(data, key)
        if helper is not None:
            found = self._run_helper(helper, "erase", key) is not None
        entry = self._entry(data, key)
        if entry is not None:
            self._auths(data).pop(entry[0])
            self._save(data)
            found = True
        return found
