"""Running containers: OCI runtime spec, bundles, and the runc/crun driver.

The pieces, in the order a ``run`` uses them:

* :func:`resolve_command` -- Docker's ENTRYPOINT/CMD table: what argv to run;
* :func:`write_init_files` -- the container's own hosts/resolv.conf/hostname;
* :class:`ContainerConfig` + :func:`build_spec` -- the OCI ``config.json`` with Docker's
  defaults (namespaces, mounts, capabilities, masked paths, user from ``/etc/passwd``);
* :func:`write_bundle` -- put it where the runtime reads it;
* :class:`OCIRuntime` -- ``run`` in the foreground, or ``create/start/kill/delete/state``.
"""

from .bundle import read_bundle, write_bundle
from .cgroups import CgroupInfo, CgroupMode, detect_cgroups, remove_cgroup
from .cmd import DEFAULT_SHELL, resolve_command, shell_form
from .initfiles import write_init_files
from .runc import DEVNULL, INHERIT, PIPE, ContainerState, OCIRuntime, RunResult, Stdio
from .spec import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    MASKED_PATHS,
    READONLY_PATHS,
    BindMount,
    ContainerConfig,
    Resources,
    Rlimit,
    TmpfsMount,
    build_spec,
    capabilities,
    default_rlimits,
    merge_env,
    parse_bind,
)
from .user import User, resolve_user

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "DEFAULT_SHELL",
    "DEVNULL",
    "INHERIT",
    "MASKED_PATHS",
    "PIPE",
    "READONLY_PATHS",
    "BindMount",
    "CgroupInfo",
    "CgroupMode",
    "ContainerConfig",
    "ContainerState",
    "OCIRuntime",
    "Resources",
    "Rlimit",
    "RunResult",
    "Stdio",
    "TmpfsMount",
    "User",
    "build_spec",
    "capabilities",
    "default_rlimits",
    "detect_cgroups",
    "merge_env",
    "parse_bind",
    "read_bundle",
    "remove_cgroup",
    "resolve_command",
    "resolve_user",
    "shell_form",
    "write_bundle",
    "write_init_files",
]
