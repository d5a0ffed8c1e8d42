"""Read lint configuration from ``.lamina-lint.yaml`` text or a ``pyproject.toml``.

Both carry the same keys (``-`` and ``_`` are interchangeable)::

    # .lamina-lint.yaml
    ignore: [LM210, DL3008]          # lamina, hadolint or shellcheck codes
    severity:                        # per-code overrides
      LM305: warning
    trusted-registries: [docker.io, ghcr.io]
    failure-threshold: warning       # error | warning | info | style | none

    # pyproject.toml
    [tool.lamina.lint]
    ignore = ["LM210"]
    failure-threshold = "error"

The functions take text and return a :class:`~lamina.lint.model.LintConfig`;
finding and reading the files is :mod:`lamina.lint.runner`'s job.  A malformed
file raises :class:`~lamina.errors.InvalidArgument` naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.errors import InvalidArgument
from lamina.lint.model import LintConfig, Severity

__all__ = ["config_from_mapping", "parse_pyproject", "parse_yaml"]

_KEYS = {"ignore", "severity", "trusted-registries", "failure-threshold"}


def _strings(value: object, key: str, source: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    raise InvalidArgument(f"{source}: {key} must be a list of strings",
                          hint=f"write e.g. {key}: [LM210]")


def config_from_mapping(data: Mapping[str, object], source: str) -> LintConfig:
    """Build a :class:`LintConfig` from already-decoded keys (see module doc)."""
    norm = {str(k).replace("_", "-").lower(): v for k, v in data.items()}
    unknown = set(norm) - _KEYS
    if unknown:
        raise InvalidArgument(f"{source}: unknown lint setting {sorted(unknown)[0]!r}",
                              hint="known settings: " + ", ".join(sorted(_KEYS)))
    ignore = frozenset(c.upper() for c in _strings(norm.get("ignore", []), "ignore", source))
    sev_raw = norm.get("severity", {})
    if not isinstance(sev_raw, Mapping):
        raise InvalidArgument(f"{source}: severity must map codes to levels",
                              hint="write e.g. severity: {LM305: warning}")
    severity: dict[str, Severity] = {}
    for code, level in sev_raw.items():
        try:
            sev = Severity.parse(str(level))
        except ValueError as exc:
            raise InvalidArgument(f"{source}: severity of {code}: {exc}") from None
        if sev is Severity.NONE:
            raise InvalidArgument(f"{source}: severity of {code} cannot be 'none'",
                                  hint="use ignore to turn a rule off")
        severity[str(code).upper()] = sev
    trusted = tuple(_strings(norm.get("trusted-registries", []), "trusted-registries", source))
    threshold = None
    if "failure-threshold" in norm:
        try:
            threshold = Severity.parse(str(norm["failure-threshold"]))
        except ValueError as exc:
            raise InvalidArgument(f"{source}: failure-threshold: {exc}") from None
    return LintConfig(ignore, severity, trusted, threshold)


def parse_yaml(text: str, source: str = ".lamina-lint.yaml") -> LintConfig:
    """Parse ``.lamina-lint.yaml`` text (an empty file is an empty configuration)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        return LintConfig()
    if not isinstance(data, dict):
        raise InvalidArgument(f"{source}: expected a mapping of settings at the top level")
    return config_from_mapping(data, source)


def parse_pyproject(text: str, source: str = "pyproject.toml") -> LintConfig | None:
    """The ``[tool.lamina.lint]`` table of a pyproject, or ``None`` when it has none."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{source}: not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("lamina", {}).get("lint")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise InvalidArgument(f"{source}: [tool.lamina.lint] must be a table")
    return config_from_mapping(table, source + " [tool.lamina.lint]")
