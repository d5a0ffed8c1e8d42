"""Apply Dockerfile metadata instructions to an image's runtime config.

``import --change``, ``commit --change`` and the builder all change an image's
config with Dockerfile instructions (``CMD``, ``ENV``, ``EXPOSE``…).  This module does
it once, on the config's ``config`` object in Docker's JSON shape (``Cmd``, ``Env``,
``ExposedPorts``…), so every caller gets Docker's exact rules: a shell-form
``CMD echo hi`` becomes ``["/bin/sh", "-c", "echo hi"]`` (or the image's ``SHELL``),
``ENTRYPOINT`` resets ``CMD``, ``WORKDIR`` joins relative paths, ``ENV`` replaces a
variable in place.

>>> cfg = apply_change_lines({}, ["ENV A=1", "CMD echo $A", "EXPOSE 80/udp 8080"])
>>> cfg["Cmd"], cfg["Env"], sorted(cfg["ExposedPorts"])
(['/bin/sh', '-c', 'echo $A'], ['A=1'], ['80/udp', '8080/tcp'])
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from lamina.build.dockerfile import instructions as ins
from lamina.build.dockerfile.parser import parse
from lamina.build.dockerfile.shell import env_from_list
from lamina.errors import DockerfileSyntaxError, InvalidArgument

__all__ = ["CHANGE_COMMANDS", "apply_change_lines", "apply_instruction", "set_env"]

CHANGE_COMMANDS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD",
                   "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
DEFAULT_SHELL = ("/bin/sh", "-c")


def set_env(env: list[str], key: str, value: str) -> list[str]:
    """``env`` with ``key=value`` set: replaced in place if present, else appended."""
    out = list(env)
    for i, item in enumerate(out):
        if item.split("=", 1)[0] == key:
            out[i] = f"{key}={value}"
            return out
    out.append(f"{key}={value}")
    return out


def _shell(cfg: Mapping[str, Any]) -> list[str]:
    return list(cfg.get("Shell") or DEFAULT_SHELL)


def apply_instruction(cfg: dict[str, Any], instr: ins.Instruction, *,
                      cmd_set: bool = False) -> dict[str, Any]:
    """Return a copy of ``cfg`` (Docker JSON ``config`` object) changed by one instruction.

    ``ENTRYPOINT`` clears an inherited ``CMD`` unless ``cmd_set`` says a ``CMD`` came
    earlier in the same stage (BuildKit's rule).

    ``instr`` must already be expanded (see
    :func:`lamina.build.dockerfile.instructions.expand_instruction`); RUN, COPY, ADD,
    FROM and ARG change files or build state, not the config, and are rejected here.
    """
    cfg = dict(cfg)
    if isinstance(instr, ins.Cmd):
        cfg["Cmd"] = list(instr.command) if instr.json else [*_shell(cfg), " ".join(instr.command)]
        if not instr.json:
            cfg["ArgsEscaped"] = True
    elif isinstance(instr, ins.Entrypoint):
        if instr.json:
            cfg["Entrypoint"] = list(instr.command)
        else:
            cfg["Entrypoint"] = [*_shell(cfg), " ".join(instr.command)]
            cfg["ArgsEscaped"] = True
        if not cmd_set:
            cfg["Cmd"] = None
    elif isinstance(instr, ins.Env):
        env = list(cfg.get("Env") or [])
        for kv in instr.pairs:
            env = set_env(env, kv.key, kv.value)
        cfg["Env"] = env
    elif isinstance(instr, ins.Label):
        labels = dict(cfg.get("Labels") or {})
        for kv in instr.pairs:
            labels[kv.key] = kv.value
        cfg["Labels"] = labels
    elif isinstance(instr, ins.Expose):
        ports = dict(cfg.get("ExposedPorts") or {})
        for spec in instr.ports:
            for port in ins.parse_port_spec(spec).exposed_ports():
                ports[port] = {}
        cfg["ExposedPorts"] = ports
    elif isinstance(instr, ins.User):
        cfg["User"] = instr.user
    elif isinstance(instr, ins.Workdir):
        base = cfg.get("WorkingDir") or "/"
        cfg["WorkingDir"] = posixpath.normpath(posixpath.join(base, instr.path))
    elif isinstance(instr, ins.Volume):
        vols = dict(cfg.get("Volumes") or {})
        for p in instr.paths:
            if not p:
                raise InvalidArgument("VOLUME specified can not be an empty string")
            vols[p] = {}
        cfg["Volumes"] = vols
    elif isinstance(instr, ins.Stopsignal):
        cfg["StopSignal"] = instr.signal
    elif isinstance(instr, ins.Onbuild):
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), instr.expression]
    elif isinstance(instr, ins.Shell):
        cfg["Shell"] = list(instr.shell)
    elif isinstance(instr, ins.Healthcheck):
        cfg["Healthcheck"] = _healthcheck(instr)
    elif isinstance(instr, ins.Maintainer):
        pass  # the author lives outside the runtime config
    else:
        raise InvalidArgument(f"{instr.keyword} does not change an image's config")
    return cfg


def _healthcheck(h: ins.Healthcheck) -> dict[str, Any]:
    out: dict[str, Any] = {"Test": list(h.test)}
    for key, value in (("Interval", h.interval), ("Timeout", h.timeout),
                       ("StartPeriod", h.start_period), ("StartInterval", h.start_interval),
                       ("Retries", h.retries)):
        if value:
            out[key] = value
    return out


def apply_change_lines(cfg: Mapping[str, Any], lines: Iterable[str]) -> dict[str, Any]:
    """``--change`` lines (one Dockerfile instruction each) applied in order.

    Variables in ENV, LABEL, WORKDIR… expand against the config's environment as it
    is at that line.  An instruction that is not a metadata change is an error.
    """
    out = dict(cfg)
    cmd_set = False
    for n, line in enumerate(lines, 1):
        keyword = line.strip().split(None, 1)[0].upper() if line.strip() else ""
        if keyword not in CHANGE_COMMANDS:
            raise InvalidArgument(
                f"{line.strip().split(None, 1)[0] if line.strip() else '(empty)'} is not a valid "
                f"change command",
                hint="--change takes one of: " + ", ".join(CHANGE_COMMANDS))
        doc = parse(line + "\n", path=f"--change #{n}")
        for node in doc.nodes:
            try:
                instr = ins.parse_instruction(node, file=f"--change #{n}", source_lines=doc.source_lines)
                ex = ins.Expander(env_from_list(out.get("Env") or []), doc.escape)
                instr = ins.expand_instruction(instr, ex, file=f"--change #{n}")
            except DockerfileSyntaxError as exc:
                raise InvalidArgument(f"--change {line.strip()!r}: {exc.message}", hint=exc.hint) from exc
            out = apply_instruction(out, instr, cmd_set=cmd_set)
            cmd_set = cmd_set or isinstance(instr, ins.Cmd)
    return out
