"""The public surface of lamina.layer: every exported name resolves, imports stay lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lamina.layer
from lamina.errors import InvalidArgument
from lamina.layer import source_date_epoch_from_env


@pytest.mark.parametrize("name", lamina.layer.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    value = getattr(lamina.layer, name)
    assert getattr(value, "__name__", name) == name
    assert name in dir(lamina.layer)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = lamina.layer.no_such_thing  # type: ignore[attr-defined]


def test_importing_the_package_loads_no_codec_or_submodule() -> None:
    code = (
        "import sys, lamina.layer; "
        "print(sorted(m for m in sys.modules if m.startswith(('lamina.layer.', 'isal', 'zstandard'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_source_date_epoch_from_env() -> None:
    assert source_date_epoch_from_env({}) is None
    assert source_date_epoch_from_env({"SOURCE_DATE_EPOCH": ""}) is None
    assert source_date_epoch_from_env({"SOURCE_DATE_EPOCH": " 1700000000 "}) == 1_700_000_000
    with pytest.raises(InvalidArgument, match="SOURCE_DATE_EPOCH"):
        source_date_epoch_from_env({"SOURCE_DATE_EPOCH": "yesterday"})
