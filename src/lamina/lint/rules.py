"""The lint rules.  Each is a pure function registered with :func:`~lamina.lint.registry.rule`.

Codes are grouped by hundreds and never reused:

* ``LM1xx`` base images and stages,
* ``LM2xx`` instructions,
* ``LM3xx`` what RUN does (package managers, shell habits),
* ``LM4xx`` users and secrets,
* ``LM5xx`` the build context.

Two policies apply across rules (and are documented on the rule pages):

* **Wrong package manager wins.**  When a RUN calls ``apt-get`` on an Alpine base
  (or ``apk`` on Debian, ``yum`` on either…), LM301 reports it and the advice of
  the other rules for that package manager is held back: tuning flags of a command
  that cannot run is noise; the fix is to switch to the right tool.
* **Size advice only where it ships.**  Cache and list cleanup (LM305-LM309) is
  checked only in stages that end up in the final image (the last stage and the
  stages it is built ``FROM``); layers of a stage used only by ``COPY --from`` are
  thrown away.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterator

from lamina.build.dockerfile.ast import Node
from lamina.lint.analysis import Analysis, RunInfo, Stage
from lamina.lint.images import parse_image
from lamina.lint.model import Autofix, Edit, LintOptions, Severity
from lamina.lint.registry import Hit, rule
from lamina.lint.shell import Command

KNOWN_INSTRUCTIONS = (
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
)

# --- helpers -------------------------------------------------------------------------


def _range(a: Analysis, node: Node) -> tuple[int, int]:
    """Physical lines that belong to ``node`` (heredoc bodies included)."""
    nodes = a.doc.nodes
    end = len(a.doc.source_lines) or node.span.end_line
    node = a.triggers.get(node, node)  # a trigger spans the lines of its ONBUILD
    for i, n in enumerate(nodes):
        if n is node and i + 1 < len(nodes):
            end = nodes[i + 1].span.start_line - 1
            break
    return node.span.start_line, max(node.span.end_line, end)


def _find(a: Analysis, node: Node, pattern: str,
          nth: int = 0) -> tuple[int, re.Match[str]] | None:
    """The line number and ``nth`` match of ``pattern`` on the physical lines of ``node``."""
    first, last = _range(a, node)
    rx = re.compile(pattern)
    k = 0
    for lineno in range(first, last + 1):
        if lineno - 1 >= len(a.doc.source_lines):
            break
        text = a.doc.source_lines[lineno - 1]
        if text.lstrip().startswith("#") and lineno != first:
            continue
        for m in rx.finditer(text):
            if k == nth:
                return lineno, m
            k += 1
    return None


def _pos(a: Analysis, node: Node, word: str, nth: int = 0) -> tuple[int | None, int | None]:
    """Line and column of the ``nth`` occurrence of ``word`` in ``node`` (or of the node)."""
    found = _find(a, node, r"(?<![\w/.-])" + re.escape(word) + r"(?![\w-])", nth)
    if found is None:
        return None, None
    return found[0], found[1].start() + 1


def _nth(cmds: tuple[Command, ...], cmd: Command) -> int:
    """How many earlier commands share ``cmd``'s first word (for :func:`_pos`)."""
    n = 0
    for c in cmds:
        if c is cmd:
            return n
        if c.words[:1] == cmd.words[:1]:
            n += 1
    return n


def _runs(a: Analysis) -> Iterator[tuple[RunInfo, Stage]]:
    for node, info in a.runs.items():
        st = a.stage(node)
        if st is not None and info.script is not None:
            yield info, st


def _cmd_hit(a: Analysis, info: RunInfo, cmd: Command, message: str, fix: str,
             autofix: Autofix | None = None) -> Hit:
    assert info.script is not None
    line, col = _pos(a, info.node, cmd.words[0], _nth(info.script.commands, cmd))
    return Hit(info.node, message, fix, line, col, autofix)


def _with_triggers(a: Analysis, st: Stage) -> list[Node]:
    """The instructions of ``st`` in order, each ONBUILD followed by its trigger."""
    return [n for n in a.instructions if a.stage_of.get(n) == st.index and n is not st.from_node]


def _is_apt(c: Command) -> bool:
    return c.name in ("apt-get", "apt", "aptitude")


def _apt_sub(c: Command) -> str | None:
    return c.subcommand() if _is_apt(c) else None


def _apt_install(c: Command) -> bool:
    """``apt-get install …`` that really installs (not ``-s``/``--simulate``)."""
    return (c.name in ("apt-get", "apt") and c.subcommand() == "install"
            and not c.has_flag("-s", "--simulate", "--dry-run", "--just-print", "--no-act"))


def _family_allows(st: Stage, family: str) -> bool:
    """True unless the stage is known to use another package manager (LM301 covers that)."""
    return st.family in (None, family)


def _insert_after_subcommand(a: Analysis, info: RunInfo, cmd: Command, sub: str,
                             text: str) -> Autofix | None:
    """An edit inserting ``text`` right after ``<program> [opts] <sub>`` on one line."""
    if info.node.json:
        return None
    assert info.script is not None
    pat = (r"(?<![\w/.-])" + re.escape(cmd.words[0]) + r"(?:\s+-[^\s]+)*\s+" + re.escape(sub)
           + r"(?![\w-])")
    nth = 0
    for c in info.script.commands:
        if c is cmd:
            break
        if c.words[:1] == cmd.words[:1] and c.subcommand() == sub:
            nth += 1
    found = _find(a, info.node, pat, nth)
    if found is None:
        return None
    line, m = found
    return Autofix(f"insert {text.strip()}", (Edit(line, m.end() + 1, line, m.end() + 1, text),))


def _append_to_run(a: Analysis, node: Node, text: str, description: str) -> Autofix | None:
    """Append shell text at the end of a shell-form RUN without heredocs."""
    if node.json or node.heredocs:
        return None
    last = node.span.end_line
    if last - 1 >= len(a.doc.source_lines):
        return None
    line = a.doc.source_lines[last - 1]
    end = len(line.rstrip()) + 1
    return Autofix(description, (Edit(last, end, last, len(line) + 1, text),))


# --- LM0xx: parse problems are produced by the engine; LM1xx: base images -------------


@rule("LM101", "untagged-image", Severity.WARNING,
      "FROM names an image without a tag or digest", hadolint=("DL3006",))
def _untagged(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for st in a.stages:
        if st.parent is not None or not st.image or st.image.lower() == "scratch":
            continue
        name = parse_image(st.image)
        if name.tag is None and name.digest is None:
            via = f" (resolved from {st.raw_image})" if st.raw_image != st.image else ""
            yield Hit(st.from_node, f"image {st.image!r} has no tag{via}: it means 'latest', "
                      "whatever that is on the day you build",
                      f"pin a version, e.g. {name.repository}:<version>")


@rule("LM102", "latest-tag", Severity.WARNING,
      "FROM uses the moving 'latest' tag", hadolint=("DL3007",))
def _latest(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for st in a.stages:
        if st.parent is not None or not st.image:
            continue
        name = parse_image(st.image)
        if name.tag == "latest" and name.digest is None:
            yield Hit(st.from_node, f"image {st.image!r} uses the 'latest' tag, which moves",
                      f"pin a version, e.g. {name.repository}:<version>")


@rule("LM103", "untrusted-registry", Severity.ERROR,
      "FROM pulls from a registry that is not in the trusted list", hadolint=("DL3026",))
def _untrusted(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    trusted = {t.lower() for t in opts.config.trusted_registries}
    if not trusted:
        return
    for st in a.stages:
        if st.parent is not None or not st.image or st.image.lower() == "scratch":
            continue
        reg = (parse_image(st.image).registry or "docker.io").lower()
        hub = reg == "docker.io" and ({"docker.io", "hub.docker.com", "index.docker.io"} & trusted)
        if reg not in trusted and not hub:
            yield Hit(st.from_node, f"registry {reg!r} is not trusted",
                      f"use an image from {', '.join(sorted(trusted))} or trust {reg}")


@rule("LM104", "duplicate-stage-name", Severity.ERROR,
      "two stages share a name", hadolint=("DL3024",))
def _dup_stage(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    seen: set[str] = set()
    for st in a.stages:
        if st.name:
            if st.name in seen:
                yield Hit(st.from_node, f"stage name {st.name!r} is already used",
                          "give each stage a unique name")
            seen.add(st.name)


@rule("LM105", "copy-from-self", Severity.ERROR,
      "COPY --from names the stage it is in", hadolint=("DL3023",))
def _copy_self(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for st in a.stages:
        if not st.name:
            continue
        for node in st.nodes:
            if node.cmd == "copy":
                for f in node.flags:
                    if f.lower() == f"--from={st.name}":
                        yield Hit(node, f"COPY --from={st.name} refers to its own stage",
                                  "copy from an earlier stage or from the context")


# --- LM2xx: instructions -------------------------------------------------------------


def _case_like(template: str, word: str) -> str:
    if word.islower():
        return template.lower()
    if word[:1].isupper() and word[1:].islower():
        return template.capitalize()
    return template


def _keyword_edit(a: Analysis, node: Node, new: str) -> Edit:
    """Replace ``node``'s keyword (for an ONBUILD trigger, the word after ONBUILD)."""
    line, col = node.span.start_line, a.keyword_column(node)
    return Edit(line, col, line, col + len(node.keyword), new)


@rule("LM201", "unknown-instruction", Severity.ERROR,
      "an instruction the builder does not know (often a typo)")
def _unknown(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in a.instructions:
        if node.keyword.upper() in KNOWN_INSTRUCTIONS:
            continue
        guess = difflib.get_close_matches(node.keyword.upper(), KNOWN_INSTRUCTIONS, 1, 0.6)
        if guess:
            new = _case_like(guess[0], node.keyword)
            yield Hit(node, f"unknown instruction {node.keyword!r}; did you mean {new!r}?",
                      f"rename it to {new}",
                      autofix=Autofix(f"rename {node.keyword} to {new}",
                                      (_keyword_edit(a, node, new),)))
        else:
            yield Hit(node, f"unknown instruction {node.keyword!r}",
                      "use one of the Dockerfile instructions (FROM, RUN, COPY, …)")


@rule("LM202", "maintainer-deprecated", Severity.WARNING,
      "MAINTAINER is deprecated", hadolint=("DL4000",))
def _maintainer(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in a.doc.nodes:
        if node.cmd != "maintainer":
            continue
        who = node.args[0] if node.args else ""
        escaped = who.replace("\\", "\\\\").replace('"', '\\"')
        label = f'{_case_like("LABEL", node.keyword)} org.opencontainers.image.authors="{escaped}"'
        last = node.span.end_line
        end_col = len(a.doc.source_lines[last - 1]) + 1 if last <= len(a.doc.source_lines) else 1
        yield Hit(node, "MAINTAINER is deprecated",
                  "use LABEL org.opencontainers.image.authors=\"…\"",
                  autofix=Autofix("replace MAINTAINER with an authors LABEL",
                                  (Edit(node.span.start_line, node.span.start_col, last, end_col,
                                        label),)))


def _repeated(a: Analysis, cmd: str) -> Iterator[Node]:
    for st in a.stages:
        found = [n for n in st.nodes if n.cmd == cmd]
        yield from found[:-1]


@rule("LM203", "multiple-cmd", Severity.WARNING,
      "a stage has more than one CMD; only the last counts", hadolint=("DL4003",))
def _multi_cmd(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in _repeated(a, "cmd"):
        yield Hit(node, "this CMD is overridden by a later CMD in the same stage",
                  "keep only the last CMD")


@rule("LM204", "multiple-entrypoint", Severity.WARNING,
      "a stage has more than one ENTRYPOINT; only the last counts", hadolint=("DL4004",))
def _multi_entrypoint(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in _repeated(a, "entrypoint"):
        yield Hit(node, "this ENTRYPOINT is overridden by a later ENTRYPOINT in the same stage",
                  "keep only the last ENTRYPOINT")


@rule("LM205", "shell-form-cmd", Severity.WARNING,
      "CMD/ENTRYPOINT in shell form: signals do not reach the program", hadolint=("DL3025",))
def _shell_form(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for st in a.stages:
        if not st.shipped or st.family == "windows":
            continue
        for node in _with_triggers(a, st):
            if node.cmd not in ("cmd", "entrypoint") or node.json or not node.args:
                continue
            text = node.args[0].strip()
            if text.startswith("["):
                msg = (f"{node.keyword} looks like a JSON array but is not valid JSON "
                       "(single quotes?), so it runs through /bin/sh -c")
                fix = 'use double quotes: ["prog", "arg"]'
            else:
                msg = (f"shell-form {node.keyword} runs under /bin/sh -c: the program is not "
                       "PID 1 and does not receive SIGTERM")
                fix = f'use the exec form: {node.keyword} ["prog", "arg"] (or "exec prog" in a script)'
            yield Hit(node, msg, fix)


@rule("LM206", "relative-workdir", Severity.WARNING,
      "WORKDIR with a relative path depends on the previous WORKDIR", hadolint=("DL3000",))
def _workdir(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in a.instructions:
        if node.cmd != "workdir" or not node.args:
            continue
        path = node.args[0].strip().strip("\"'")
        if path.startswith(("/", "$")) or re.match(r"^[A-Za-z]:[\\/]", path):
            continue
        yield Hit(node, f"WORKDIR {path!r} is relative", f"use an absolute path, e.g. /{path}")


_ARCHIVE = re.compile(r"\.(tar|tgz|tbz2?|txz|tzst|tar\.(gz|bz2|xz|zst|lz4|lzma)|gz|bz2|xz|zst)$",
                      re.IGNORECASE)


@rule("LM207", "add-local-file", Severity.WARNING,
      "ADD of plain local files where COPY says what is meant", hadolint=("DL3020",))
def _add_local(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in a.instructions:
        if node.cmd != "add" or len(node.args) < 2 or node.heredocs:
            continue
        sources = node.args[:-1]
        if any("://" in s or s.startswith("git@") or _ARCHIVE.search(s) or "$" in s
               for s in sources):
            continue
        fixable = not any(f.split("=")[0] in ("--checksum", "--keep-git-dir", "--unpack")
                          for f in node.flags)
        new = _case_like("COPY", node.keyword)
        yield Hit(node, "ADD copies local files here; it also unpacks archives and fetches "
                  "URLs, which COPY never does", f"use {new}",
                  autofix=Autofix(f"replace ADD with {new}", (_keyword_edit(a, node, new),))
                  if fixable else None)


@rule("LM208", "expose-invalid", Severity.ERROR,
      "EXPOSE with a host mapping or a port out of range", hadolint=("DL3011",))
def _expose(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in a.instructions:
        if node.cmd != "expose":
            continue
        for word in node.args:
            port = word.split("/", 1)[0]
            if "$" in port:
                continue
            if ":" in port:
                yield Hit(node, f"EXPOSE {word}: a host port mapping is not allowed here",
                          f"write EXPOSE {port.rsplit(':', 1)[-1]} and map ports at run time")
                continue
            for part in port.split("-"):
                if not part.isdigit() or not 0 <= int(part) <= 65535:
                    yield Hit(node, f"EXPOSE {word}: not a valid port",
                              "use a port number between 0 and 65535")
                    break


@rule("LM209", "cd-in-run", Severity.WARNING,
      "cd inside RUN instead of WORKDIR", hadolint=("DL3003",))
def _cd(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, _st in _runs(a):
        assert info.script is not None
        for c in info.script.commands:
            if c.name == "cd" and not c.in_subshell:
                yield _cmd_hit(a, info, c, "cd in RUN only lasts for this RUN; later "
                               "instructions start in WORKDIR again",
                               "use WORKDIR (or put the cd in a ( … ) subshell)")
                break


@rule("LM210", "consecutive-run", Severity.INFO,
      "consecutive RUN instructions that could be one layer", hadolint=("DL3059",))
def _consecutive(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    lines = a.doc.source_lines
    for st in a.stages:
        prev: Node | None = None
        for node in st.nodes:
            commented = prev is not None and any(
                lines[i].lstrip().startswith("#")
                for i in range(prev.span.end_line, min(node.span.start_line - 1, len(lines))))
            if (node.cmd == "run" and prev is not None and prev.cmd == "run" and not commented
                    and not node.json and not prev.json and not node.heredocs
                    and not prev.heredocs and node.flags == prev.flags):
                yield Hit(node, "this RUN follows another RUN; each one adds a layer",
                          "join them with && in one RUN")
            prev = node


@rule("LM211", "legacy-key-value", Severity.STYLE,
      "ENV/LABEL in the legacy 'key value' form")
def _legacy_kv(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in a.instructions:
        if node.cmd in ("env", "label") and len(node.args) >= 3 and node.args[2] == "":
            yield Hit(node, f"'{node.keyword} {node.args[0]} value' is the legacy form; it "
                      "cannot set several keys and reads surprisingly with spaces",
                      f"write {node.keyword} {node.args[0]}=\"value\"")


def _casing(word: str) -> str:
    """``upper``, ``lower`` or ``mixed`` (``Run``) for an instruction keyword."""
    return "upper" if word.isupper() else "lower" if word.islower() else "mixed"


@rule("LM212", "inconsistent-casing", Severity.STYLE,
      "instruction keywords mix upper and lower case")
def _keyword_casing(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    nodes = [n for n in a.instructions if n.keyword.upper() in KNOWN_INSTRUCTIONS]
    counts = {"upper": 0, "lower": 0}
    for n in nodes:
        kind = _casing(n.keyword)
        if kind in counts:
            counts[kind] += 1
    # The majority sets the style; a tie (or only mixed-case words) means upper case,
    # the convention of the Dockerfile reference.
    style = "lower" if counts["lower"] > counts["upper"] else "upper"
    for n in nodes:
        kind = _casing(n.keyword)
        if kind == style:
            continue
        new = n.keyword.lower() if style == "lower" else n.keyword.upper()
        what = "mixes upper and lower case" if kind == "mixed" else f"is {kind} case"
        yield Hit(n, f"{n.keyword} {what} while the file's instructions are {style} case",
                  f"write {new}", column=a.keyword_column(n),
                  autofix=Autofix(f"rename {n.keyword} to {new}", (_keyword_edit(a, n, new),)))


@rule("LM213", "from-as-casing", Severity.STYLE,
      "the AS of FROM … AS name is not cased like FROM")
def _from_as(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for st in a.stages:
        node = st.from_node
        if len(node.args) < 3 or node.args[1].lower() != "as":
            continue
        word, kw = node.args[1], node.keyword
        want = "AS" if kw.isupper() else "as" if kw.islower() else None
        if want is None or word == want:
            continue
        found = _find(a, node, r"(?<=\s)" + re.escape(word) + r"(?=\s+" + re.escape(node.args[2])
                      + r"(?:\s|$))")
        line, col = (found[0], found[1].start() + 1) if found else (None, None)
        fix = (Autofix(f"write {want}", (Edit(line, col, line, col + len(word), want),))
               if line is not None and col is not None else None)
        yield Hit(node, f"'{kw} … {word} {node.args[2]}': {word!r} is not cased like {kw}",
                  f"write {kw} … {want} {node.args[2]}", line, col, fix)


# --- LM3xx: RUN ----------------------------------------------------------------------

_PM = {"apt-get": "apt", "apt": "apt", "aptitude": "apt", "dpkg": "apt", "apk": "apk",
       "yum": "rpm", "dnf": "rpm", "microdnf": "rpm", "rpm": "rpm", "zypper": "zypper"}
_RIGHT_TOOL = {"apk": "apk add --no-cache", "apt": "apt-get install", "rpm": "dnf/yum install",
               "zypper": "zypper install", "none": "a multi-stage build (this base has no "
               "package manager)", "windows": "a Windows package tool"}
_FAMILY_NAME = {"apk": "Alpine", "apt": "Debian/Ubuntu", "rpm": "RHEL/Fedora",
                "zypper": "openSUSE", "none": "package-manager-less", "windows": "Windows"}


@rule("LM301", "wrong-package-manager", Severity.ERROR,
      "a package manager that does not exist on the base image (apt-get on Alpine…)")
def _wrong_pm(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, st in _runs(a):
        assert info.script is not None
        if st.family is None:
            continue
        for c in info.script.commands:
            fam = _PM.get(c.name)
            if fam is None or fam == st.family or c.name == "rpm" or c.name == "dpkg":
                continue
            base = st.image or st.raw_image
            yield _cmd_hit(a, info, c, f"{c.name} does not exist on {base} "
                           f"({_FAMILY_NAME.get(st.family, st.family)} base); this RUN fails",
                           f"use {_RIGHT_TOOL.get(st.family, 'the base image tool')}")
            break


def _apt_runs(a: Analysis, shipped_only: bool = False) -> Iterator[tuple[RunInfo, Command]]:
    for info, st in _runs(a):
        if not _family_allows(st, "apt") or (shipped_only and not st.shipped):
            continue
        assert info.script is not None
        for c in info.script.commands:
            if _is_apt(c):
                yield info, c


@rule("LM302", "apt-upgrade", Severity.WARNING,
      "apt-get upgrade/dist-upgrade in a build", hadolint=("DL3005",))
def _apt_upgrade(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, c in _apt_runs(a):
        sub = c.subcommand()
        if sub in ("upgrade", "dist-upgrade", "full-upgrade"):
            yield _cmd_hit(a, info, c, f"{c.name} {sub} makes the image depend on the day "
                           "it was built and belongs in the base image",
                           "use a newer base image tag instead, or install only what you need")


@rule("LM303", "apt-update-alone", Severity.WARNING,
      "apt-get update without an install in the same RUN")
def _apt_update_alone(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, c in _apt_runs(a):
        if c.subcommand() != "update":
            continue
        assert info.script is not None
        if any(_apt_sub(o) in ("install", "upgrade", "dist-upgrade", "full-upgrade",
                               "build-dep", "source") for o in info.script.commands):
            continue
        yield _cmd_hit(a, info, c, "apt-get update in a RUN of its own: its layer is cached "
                       "and later installs use stale package lists",
                       "run apt-get update && apt-get install … in the same RUN",
                       _merge_update_fix(a, info))
        break


def _merge_update_fix(a: Analysis, info: RunInfo) -> Autofix | None:
    """Delete a RUN that is only ``apt-get update`` and prefix the next RUN with it."""
    assert info.script is not None
    if info.node.json or info.node.heredocs or len(info.script.commands) != 1:
        return None
    if info.node in a.triggers:
        return None  # the next instruction is not the next thing a trigger runs before
    nodes = a.doc.nodes
    idx = next(i for i, n in enumerate(nodes) if n is info.node)
    if idx + 1 >= len(nodes):
        return None
    nxt = nodes[idx + 1]
    nxt_info = a.runs.get(nxt)
    if (nxt.cmd != "run" or nxt.json or nxt_info is None or nxt_info.script is None
            or not any(_apt_sub(c) == "install" for c in nxt_info.script.commands)):
        return None
    first = a.doc.source_lines[nxt.span.start_line - 1]
    m = re.match(r"\s*\S+\s+((?:--\S+\s+)*)", first)
    if m is None:
        return None
    cmd_text = " ".join(info.script.commands[0].words)
    start, end = info.node.span.start_line, info.node.span.end_line
    return Autofix("merge apt-get update into the next RUN", (
        Edit(start, 1, end + 1, 1, ""),
        Edit(nxt.span.start_line, m.end() + 1, nxt.span.start_line, m.end() + 1,
             f"{cmd_text} && "),
    ))


@rule("LM304", "apt-install-no-yes", Severity.WARNING,
      "apt-get install without -y waits for an answer", hadolint=("DL3014",))
def _apt_yes(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, c in _apt_runs(a):
        if not _apt_install(c):
            continue
        if c.has_flag("-y", "--yes", "--assume-yes") or "-qq" in c.args or "-q=2" in c.args:
            continue
        yield _cmd_hit(a, info, c, f"{c.name} install without -y asks for confirmation and "
                       "aborts in a non-interactive build", "add -y",
                       _insert_after_subcommand(a, info, c, "install", " -y"))


@rule("LM305", "apt-install-recommends", Severity.INFO,
      "apt-get install without --no-install-recommends", hadolint=("DL3015",))
def _apt_recommends(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    configured = any(
        r.startswith("/etc/apt/apt.conf.d")
        for info, _ in _runs(a) for c in (info.script.commands if info.script else ())
        for r in c.redirects
    )
    if configured:
        return
    for info, c in _apt_runs(a, shipped_only=True):
        if not _apt_install(c):
            continue
        if c.has_flag("--no-install-recommends") or any("Install-Recommends" in w
                                                         for w in c.args):
            continue
        yield _cmd_hit(a, info, c, "apt-get install also pulls recommended packages you "
                       "did not ask for", "add --no-install-recommends",
                       _insert_after_subcommand(a, info, c, "install",
                                                " --no-install-recommends"))


@rule("LM306", "apt-lists-kept", Severity.INFO,
      "apt package lists left in the layer", hadolint=("DL3009",))
def _apt_lists(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, st in _runs(a):
        assert info.script is not None
        if not st.shipped or not _family_allows(st, "apt"):
            continue
        cmds = info.script.commands
        updates = [c for c in cmds if _is_apt(c) and c.subcommand() == "update"]
        if not updates:
            continue
        if info.cache_mounted("/var/lib/apt/lists", "/var/lib/apt"):
            continue
        if any((c.name == "rm" and any(w.startswith("/var/lib/apt/lists") for w in c.args))
               or (_is_apt(c) and c.subcommand() == "dist-clean") for c in cmds):
            continue
        yield _cmd_hit(a, info, updates[0], "apt-get update leaves ~40 MB of package lists "
                       "in this layer", "end the RUN with && rm -rf /var/lib/apt/lists/*",
                       _append_to_run(a, info.node, " && rm -rf /var/lib/apt/lists/*",
                                      "remove the apt lists at the end of the RUN"))


def _pip_args(c: Command) -> tuple[str, ...] | None:
    """Arguments after ``pip`` for ``pip …``, ``pip3.12 …`` and ``python -m pip …``."""
    if re.fullmatch(r"pip[0-9.]*", c.name):
        return c.args
    if re.fullmatch(r"python[0-9.]*", c.name) and c.args[:2] == ("-m", "pip"):
        return c.args[2:]
    return None


@rule("LM307", "pip-cache", Severity.WARNING,
      "pip install keeps its download cache in the image", hadolint=("DL3042",))
def _pip_cache(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    env_set: set[int] = set()
    for st in a.stages:
        if any(n.cmd == "env" and "PIP_NO_CACHE_DIR" in n.args[0::3] for n in st.nodes):
            env_set.add(st.index)
    for info, st in _runs(a):
        assert info.script is not None
        if not st.shipped or st.index in env_set or (
                st.parent is not None and st.parent in env_set):
            continue
        if info.cache_mounted("/root/.cache", "/root/.cache/pip") or any(
                m.type == "cache" and ("pip" in m.target or ".cache" in m.target)
                for m in info.mounts):
            continue
        if "PIP_NO_CACHE_DIR" in info.script.text:
            continue
        for c in info.script.commands:
            args = _pip_args(c)
            if args is None or not args or args[0] != "install":
                continue
            if "--no-cache-dir" in args or "--no-cache" in args:
                continue
            yield _cmd_hit(a, info, c, "pip install keeps its download cache in the layer",
                           "add --no-cache-dir (or use RUN --mount=type=cache,target=/root/.cache/pip)",
                           _insert_after_subcommand(a, info, c, "install", " --no-cache-dir")
                           if c.args[:1] == ("install",) else None)


@rule("LM308", "apk-cache", Severity.INFO,
      "apk add without --no-cache keeps the index in the image", hadolint=("DL3019",))
def _apk_cache(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, st in _runs(a):
        assert info.script is not None
        if not st.shipped or not _family_allows(st, "apk"):
            continue
        if info.cache_mounted("/var/cache/apk", "/etc/apk/cache"):
            continue
        cmds = info.script.commands
        if any(c.name == "rm" and any(w.startswith("/var/cache/apk") for w in c.args)
               for c in cmds):
            continue
        for c in cmds:
            if c.name == "apk" and c.subcommand() == "add" and not c.has_flag("--no-cache"):
                yield _cmd_hit(a, info, c, "apk add without --no-cache leaves the package "
                               "index in the layer", "use apk add --no-cache (and drop apk update)",
                               _insert_after_subcommand(a, info, c, "add", " --no-cache"))
                break


_CLEAN = {"yum": ("/var/cache/yum",), "dnf": ("/var/cache/dnf", "/var/cache/yum"),
          "microdnf": ("/var/cache/yum", "/var/cache/dnf"), "zypper": ("/var/cache/zypp",)}


@rule("LM309", "rpm-cache", Severity.WARNING,
      "yum/dnf/zypper install without cleaning the cache",
      hadolint=("DL3032", "DL3040", "DL3036"))
def _rpm_clean(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, st in _runs(a):
        assert info.script is not None
        if not st.shipped:
            continue
        cmds = info.script.commands
        for c in cmds:
            if c.name not in _CLEAN or c.subcommand() not in ("install", "in", "groupinstall",
                                                              "update", "upgrade"):
                continue
            fam = "zypper" if c.name == "zypper" else "rpm"
            if not _family_allows(st, fam):
                continue
            paths = _CLEAN[c.name]
            if info.cache_mounted(*paths):
                continue
            cleaned = any(
                (o.name == c.name and o.subcommand() in ("clean", "cc"))
                or (o.name == "rm" and any(w.startswith(paths) for w in o.args))
                for o in cmds
            )
            if not cleaned:
                yield _cmd_hit(a, info, c, f"{c.name} {c.subcommand()} leaves its package "
                               "cache in the layer", f"end the RUN with && {c.name} clean all")
                break


@rule("LM310", "sudo-in-run", Severity.WARNING,
      "sudo inside RUN", hadolint=("DL3004",))
def _sudo(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, _st in _runs(a):
        assert info.script is not None
        for c in info.script.commands:
            if c.sudo:
                line, col = _pos(a, info.node, "sudo")
                yield Hit(info.node, "sudo in RUN: the build already runs as the current USER "
                          "and sudo may be missing or prompt", "drop sudo; switch with USER "
                          "(or gosu/su-exec at run time)", line, col)
                break


@rule("LM311", "pipe-without-pipefail", Severity.WARNING,
      "a pipe in RUN without pipefail hides failures of the left side", hadolint=("DL4006",))
def _pipefail(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, _st in _runs(a):
        assert info.script is not None
        s = info.script
        if s.parser == "exec" or not s.has_pipe or s.sets_pipefail or info.pipefail_shell:
            continue
        line, col = _pos(a, info.node, "|")
        yield Hit(info.node, "a failure on the left of a pipe is ignored (only the last "
                  "command's status counts)",
                  'add SHELL ["/bin/bash", "-o", "pipefail", "-c"] (or set -o pipefail)',
                  line, col)


_INSTALL = (
    ("pip", ("install",)), ("pip3", ("install",)), ("pipenv", ("install", "sync")),
    ("poetry", ("install",)), ("npm", ("install", "ci", "i")), ("yarn", ("install", None)),
    ("pnpm", ("install", "i")), ("bundle", ("install", None)), ("gem", ("install",)),
    ("composer", ("install",)), ("cargo", ("fetch", "build")), ("go", ("mod",)),
    ("uv", ("sync", "pip")),
)


def _install_step(c: Command) -> bool:
    name = "pip" if _pip_args(c) is not None else c.name
    args = _pip_args(c) if name == "pip" else c.args
    assert args is not None
    sub = next((w for w in args if not w.startswith("-")), None)
    for prog, subs in _INSTALL:
        if name == prog and sub in subs:
            if prog == "go":
                return "download" in args
            return True
    return False


_BROAD = frozenset({".", "./", "*", "./*", "./.", "/"})


@rule("LM312", "copy-all-before-install", Severity.WARNING,
      "the whole context is copied before the dependency install")
def _copy_before_install(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for st in a.stages:
        broad: Node | None = None
        for node in st.nodes:
            if node.cmd in ("copy", "add") and broad is None and len(node.args) >= 2:
                if any(f.startswith("--from=") for f in node.flags):
                    continue
                if any(src in _BROAD for src in node.args[:-1]):
                    broad = node
            elif node.cmd == "run" and broad is not None:
                info = a.runs.get(node)
                if info is None or info.script is None:
                    continue
                step = next((c for c in info.script.commands if _install_step(c)), None)
                if step is not None:
                    yield Hit(broad, f"the whole context is copied before "
                              f"'{' '.join(step.words[:3])}' (line {node.span.start_line}): "
                              "every source edit reinstalls all dependencies",
                              "copy only the dependency manifests first, install, "
                              "then copy the rest")
                    break


@rule("LM313", "heredoc-without-errexit", Severity.WARNING,
      "a multi-command RUN heredoc without set -e ignores failures")
def _heredoc_errexit(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, _st in _runs(a):
        s = info.script
        if s is None or not info.node.heredocs or s.sets_errexit:
            continue
        body_lines = [ln for ln in info.node.heredocs[0].content.splitlines()
                      if ln.strip() and not ln.strip().startswith("#")]
        if len(s.commands) >= 2 and len(body_lines) >= 2 and s.text == info.node.heredocs[0].content:
            yield Hit(info.node, "only the last command of this heredoc decides whether the "
                      "RUN fails; earlier failures pass silently",
                      "start the heredoc with set -e (or set -eux)")


@rule("LM314", "world-writable", Severity.WARNING,
      "chmod 777 (or o+w) makes files writable by any user")
def _chmod777(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for info, _st in _runs(a):
        assert info.script is not None
        for c in info.script.commands:
            if c.name == "chmod" and any(
                    re.fullmatch(r"0?777", w) or re.fullmatch(r"[ugoa]*o[ugoa]*\+\w*w\w*", w)
                    or w in ("a+w", "a+rwx", "+w") for w in c.args):
                yield _cmd_hit(a, info, c, "chmod makes these files writable by every user "
                               "in the container", "grant write access to the owner only "
                               "(chown to the app user, chmod 755/644)")
                break


# --- LM4xx: users and secrets --------------------------------------------------------


def _final_users(a: Analysis) -> tuple[Stage, list[Node]] | None:
    """The final stage and the USER nodes that apply to it (its FROM chain included)."""
    final = a.final
    if final is None or final.family == "windows":
        return None
    chain: list[Stage] = []
    cur: Stage | None = final
    while cur is not None:
        chain.append(cur)
        cur = a.stages[cur.parent] if cur.parent is not None else None
    return final, [n for st in reversed(chain) for n in st.nodes if n.cmd == "user"]


@rule("LM401", "no-user", Severity.WARNING,
      "the final image has no USER at all, so it runs as root")
def _no_user(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    got = _final_users(a)
    if got is not None and not got[1]:
        yield Hit(got[0].from_node, "no USER instruction: the container runs as root",
                  "create an unprivileged user and add USER <name> before CMD")


@rule("LM405", "user-root-last", Severity.WARNING,
      "the last USER of the final image is root", hadolint=("DL3002",))
def _root_last(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    got = _final_users(a)
    if got is None or not got[1]:
        return
    last = got[1][-1]
    text = (a.user_text.get(last) or "").split(":", 1)[0]
    if text in ("root", "0"):
        yield Hit(last, "the last USER is root: the container runs as root",
                  "switch to an unprivileged user at the end")


@rule("LM402", "user-not-created", Severity.ERROR,
      "USER names an account that is never created and not in the base image")
def _user_missing(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node, users in a.users_at.items():
        if users is None or node.cmd != "user":
            continue
        text = a.user_text.get(node)
        if not text:
            continue
        name = text.split(":", 1)[0]
        if not name or name.isdigit() or "$" in name:
            continue
        if name not in users:
            yield Hit(node, f"user {name!r} is {_never_created(a, node)}: the next RUN or "
                      "the container start fails",
                      f"create it first (RUN useradd --create-home {name}, or "
                      f"adduser -D {name} on Alpine) or use a numeric UID")


def _never_created(a: Analysis, node: Node) -> str:
    """"never created in this stage and does not exist in <base>" (trigger-aware)."""
    st = a.stage(node)
    base = st.image if st is not None and st.image else "the base image"
    if node in a.triggers:
        return f"not created by this image's stage or earlier triggers and not in {base}"
    return f"never created in this stage and does not exist in {base}"


@rule("LM406", "chown-unknown-owner", Severity.ERROR,
      "COPY/ADD --chown names a user or group that is never created")
def _chown_unknown(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node, text in a.chown_text.items():
        if not text or "$" in text:
            continue  # an ARG without a value: nothing to judge
        user, _, group = text.partition(":")
        checks = (("user", user, a.users_at.get(node)), ("group", group, a.groups_at.get(node)))
        for kind, name, known in checks:
            if not name or name.isdigit() or known is None or name in known:
                continue
            line, col = _pos(a, node, "--chown")
            yield Hit(node, f"--chown={text}: {kind} {name!r} is {_never_created(a, node)}, so "
                      f"{node.keyword} fails", f"create the {kind} in an earlier RUN "
                      f"({'useradd' if kind == 'user' else 'groupadd'} {name}, or "
                      f"{'adduser -D' if kind == 'user' else 'addgroup'} {name} on Alpine), "
                      "or use a numeric id", line, col)
            break


_SECRET_WORDS = frozenset({"password", "passwd", "pwd", "pass", "secret", "token", "apikey",
                           "credential", "credentials", "passphrase", "pat"})
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"),
                           ("secret", "key"), ("auth", "token"), ("client", "secret")})
_NOT_SECRET_LAST = frozenset({"file", "path", "dir", "url", "host", "port", "name", "user",
                              "username", "id", "env", "var", "type", "length", "sha256",
                              "sha", "hash", "version", "enabled", "policy", "min", "max"})
_SECRET_VALUE = re.compile(
    r"(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20}|xox[baprs]-[A-Za-z0-9-]{10,}"
    r"|sk_live_[A-Za-z0-9]{16,}|pypi-AgE[A-Za-z0-9_-]{10,}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|npm_[A-Za-z0-9]{36})")


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[_\-.]+", spaced.lower()) if w]


def secret_name(name: str) -> bool:
    """Whether an ARG/ENV name looks like it holds a credential (``DB_PASSWORD``: yes,
    ``GPG_KEY``, ``PASSWORD_FILE``: no)."""
    words = _name_words(name)
    if not words or words[-1] in _NOT_SECRET_LAST:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any((x, y) in _SECRET_PAIRS for x, y in itertools.pairwise(words))


@rule("LM403", "secret-in-arg-env", Severity.ERROR,
      "a credential in ARG or ENV stays in the image history", hadolint=("DL3064",))
def _secrets(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in a.instructions:
        pairs: list[tuple[str, str]] = []
        if node.cmd == "env":
            pairs = [(node.args[i], node.args[i + 1]) for i in range(0, len(node.args) - 1, 3)]
        elif node.cmd == "arg":
            for w in node.args:
                k, _, v = w.partition("=")
                pairs.append((k, v))
        for key, value in pairs:
            if secret_name(key):
                line, col = _pos(a, node, key)
                yield Hit(node, f"{node.keyword} {key}: a secret in {node.keyword} is saved in "
                          "the image config/history for anyone who pulls it",
                          "pass it with RUN --mount=type=secret,id=… instead", line, col)
            elif _SECRET_VALUE.search(value):
                line, col = _pos(a, node, key)
                yield Hit(node, f"{node.keyword} {key} holds what looks like a real credential",
                          "remove it; pass secrets with RUN --mount=type=secret", line, col)


_KEY_FILE = re.compile(r"(^|/)(id_(rsa|dsa|ecdsa|ed25519)|[^/]*\.(key|p12|pfx)|\.env(\.[^/]*)?"
                       r"|\.netrc|\.pypirc|credentials(\.json)?)$", re.IGNORECASE)


@rule("LM404", "copy-secret-file", Severity.ERROR,
      "a private key or credentials file copied into a layer")
def _secret_files(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    for node in a.instructions:
        if node.cmd not in ("copy", "add") or len(node.args) < 2 or node.heredocs:
            continue
        if any(f.startswith("--from=") for f in node.flags):
            continue
        for src in node.args[:-1]:
            if _KEY_FILE.search(src.rstrip("/")):
                yield Hit(node, f"{src} looks like a key or credentials file: once in a layer "
                          "it stays there, even if a later RUN deletes it",
                          "use RUN --mount=type=secret (or --mount=type=ssh for git)")
                break


# --- LM5xx: the build context --------------------------------------------------------


def _first_context_copy(a: Analysis) -> Node | None:
    for node in a.doc.nodes:
        if node.cmd in ("copy", "add") and not any(f.startswith("--from=") for f in node.flags):
            return node
    return None


@rule("LM501", "no-dockerignore", Severity.INFO,
      "the build context has no .dockerignore")
def _no_dockerignore(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    ctx = opts.context
    if ctx is None or ctx.has_dockerignore:
        return
    node = _first_context_copy(a)
    if node is None:
        return
    yield Hit(node, "the context has no .dockerignore: everything in it is sent to the "
              "builder and can end up in COPY", "add a .dockerignore (.git, secrets, "
              "build output, node_modules …)")


_KIND_TEXT = {"git": "the git history", "env": "an environment file (likely secrets)",
              "key": "a private key", "node_modules": "installed node modules",
              "large": "a large file"}


@rule("LM502", "context-exposes", Severity.WARNING,
      "the context holds .git, secrets, node_modules or large files that are not ignored")
def _exposed(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
    ctx = opts.context
    if ctx is None or not ctx.exposed:
        return
    broad = next((n for n in a.doc.nodes if n.cmd in ("copy", "add")
                  and not any(f.startswith("--from=") for f in n.flags)
                  and any(s in _BROAD for s in n.args[:-1])), None)
    if broad is None:
        return
    for item in ctx.exposed:
        what = _KIND_TEXT.get(item.kind, item.kind)
        size = f" ({item.size // (1024 * 1024)} MiB)" if item.kind == "large" else ""
        yield Hit(broad, f"{item.path} is {what}{size} and this COPY puts it in the image",
                  f"add {item.path} to .dockerignore")
