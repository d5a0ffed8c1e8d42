"""Read the Dockerfile instruction back out of a history ``created_by`` string.

Builders record steps differently:

=================================================  ==========================
``created_by``                                     instruction
=================================================  ==========================
``/bin/sh -c apt-get update``                      ``RUN`` (classic builder)
``|2 A=1 B=2 /bin/sh -c make``                     ``RUN`` with build args
``/bin/sh -c #(nop) COPY file:ab12 in /app``       ``COPY`` (classic builder)
``RUN /bin/sh -c make # buildkit``                 ``RUN`` (BuildKit)
``COPY app /app # buildkit``                       ``COPY`` (BuildKit)
=================================================  ==========================

>>> instruction_kind("/bin/sh -c #(nop) COPY file:ab in /app")
'COPY'
>>> display_instruction("RUN /bin/sh -c make # buildkit")
'RUN make'
"""

from __future__ import annotations

import re

__all__ = ["display_instruction", "instruction_kind"]

_KEYWORDS = frozenset((
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
))
_NOP = "/bin/sh -c #(nop) "
_ARGS_PREFIX = re.compile(r"^\|\d+(?:\s+\S+=\S*)*\s+")
_SHELL = re.compile(r"^/bin/(?:ba)?sh -c ")


def instruction_kind(created_by: str) -> str:
    """The instruction keyword (``RUN``, ``COPY``, ...) or ``""`` when unrecognisable."""
    text = created_by.strip()
    if text.startswith(_NOP):
        word = text[len(_NOP) :].split(" ", 1)[0].upper()
        return word if word in _KEYWORDS else ""
    text = _ARGS_PREFIX.sub("", text)
    if _SHELL.match(text):
        return "RUN"
    word = text.split(" ", 1)[0].upper()
    return word if word in _KEYWORDS else ""


def display_instruction(created_by: str) -> str:
    """A short, Dockerfile-like rendering of *created_by* for people to read."""
    text = " ".join(created_by.split())
    if text.endswith(" # buildkit"):
        text = text[: -len(" # buildkit")]
    if text.startswith(_NOP.strip() + " "):
        return text[len(_NOP) :]
    stripped = _ARGS_PREFIX.sub("", text)
    if stripped.startswith("RUN "):
        stripped = stripped[4:]
    m = _SHELL.match(stripped)
    if m:
        return "RUN " + stripped[m.end() :]
    return text
