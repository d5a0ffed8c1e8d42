"""The one error tree of lamina.

Every error lamina raises on purpose is a :class:`LaminaError`.  Each carries

* ``code`` -- a stable kebab-case identifier (scripts may match on it),
* ``message`` -- one line saying what went wrong, naming the file/line/object,
* ``hint`` -- one line saying what to do about it (may be empty).

The CLI prints ``Error: <message>`` and, when present, ``Hint: <hint>``, and exits
with :attr:`LaminaError.exit_status`; ``--debug`` shows the traceback.  Library code
wraps ``OSError``, ``subprocess`` and ``httpx`` errors at package edges with
``raise SomeLaminaError(...) from exc``.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "BlobNotFound",
    "BuildError",
    "BuildStepFailed",
    "Conflict",
    "ContainerNotFound",
    "Denied",
    "DigestMismatch",
    "DockerfileSyntaxError",
    "ExecFailed",
    "ImageNotFound",
    "IntegrityError",
    "InvalidArchive",
    "InvalidArgument",
    "InvalidManifest",
    "InvalidReference",
    "LaminaError",
    "ManifestUnknown",
    "NotFound",
    "NotSupported",
    "OCIRuntimeError",
    "RegistryError",
    "RuntimeFailure",
    "SizeMismatch",
    "Unauthorized",
    "UnsafeArchive",
]


class LaminaError(Exception):
    """Base of every lamina error: a code, a one-line message and a hint."""

    code: str = "lamina-error"
    exit_status: int = 1

    def __init__(self, message: str, *, hint: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


# --- invalid input -----------------------------------------------------------


class InvalidArgument(LaminaError, ValueError):
    """The caller passed something lamina cannot use (a bad flag, spec or file)."""

    code = "invalid-argument"
    exit_status = 125


class InvalidReference(InvalidArgument):
    """An image reference that does not follow the reference grammar."""

    code = "invalid-reference"


class InvalidManifest(InvalidArgument):
    """A manifest, index or config that is malformed or of an unknown media type."""

    code = "invalid-manifest"


class InvalidArchive(InvalidArgument):
    """A tar archive (layer, docker-archive, OCI layout) that is truncated or malformed."""

    code = "invalid-archive"


class UnsafeArchive(InvalidArchive):
    """A tar archive with an entry that would write outside its target directory."""

    code = "unsafe-archive"


class DockerfileSyntaxError(InvalidArgument):
    """A Dockerfile that cannot be parsed; carries the file, line and column (1-based)."""

    code = "dockerfile-syntax"
    exit_status = 1

    def __init__(
        self,
        message: str,
        *,
        file: str = "Dockerfile",
        line: int = 0,
        column: int = 0,
        source_line: str | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.file = file
        self.line = line
        self.column = column
        self.source_line = source_line

    def location(self) -> str:
        """``file:line:col`` (parts that are unknown are left out)."""
        loc = self.file
        if self.line:
            loc += f":{self.line}"
            if self.column:
                loc += f":{self.column}"
        return loc


# --- not found / state -------------------------------------------------------


class NotFound(LaminaError, LookupError):
    code = "not-found"


class ImageNotFound(NotFound):
    code = "image-not-found"


class ContainerNotFound(NotFound):
    code = "container-not-found"


class BlobNotFound(NotFound):
    code = "blob-not-found"


class AlreadyExists(LaminaError):
    code = "already-exists"


class Conflict(LaminaError):
    """The object is in use or in the wrong state for the operation."""

    code = "conflict"


class NotSupported(LaminaError):
    """This host lacks a kernel feature or tool the operation needs."""

    code = "not-supported"


# --- integrity ---------------------------------------------------------------


class IntegrityError(LaminaError):
    code = "integrity"


class DigestMismatch(IntegrityError):
    code = "digest-mismatch"


class SizeMismatch(IntegrityError):
    code = "size-mismatch"


# --- registries --------------------------------------------------------------


class RegistryError(LaminaError):
    code = "registry"


class Unauthorized(RegistryError):
    code = "unauthorized"


class Denied(RegistryError):
    code = "denied"


class ManifestUnknown(RegistryError):
    code = "manifest-unknown"


# --- running -----------------------------------------------------------------


class RuntimeFailure(LaminaError):
    code = "runtime"
    exit_status = 125


class OCIRuntimeError(RuntimeFailure):
    """The OCI runtime (runc/crun) failed; ``stderr`` holds what it said."""

    code = "oci-runtime"

    def __init__(self, message: str, *, stderr: str = "", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.stderr = stderr


class ExecFailed(RuntimeFailure):
    code = "exec-failed"

    def __init__(self, message: str, *, exit_code: int, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


# --- building ----------------------------------------------------------------


class BuildError(LaminaError):
    code = "build"


class BuildStepFailed(BuildError):
    def __init__(
        self,
        message: str,
        *,
        stage: str,
        line: int,
        exit_code: int,
        log_tail: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.stage = stage
        self.line = line
        self.exit_code = exit_code
        self.log_tail = log_tail

    code = "build-step-failed"
