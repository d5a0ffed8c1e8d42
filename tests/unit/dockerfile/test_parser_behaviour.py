"""Focused behaviour of the Dockerfile parser: line handling, argument shapes, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.build.dockerfile import parse as package_parse
from lamina.build.dockerfile.ast import Node
from lamina.build.dockerfile.dump import dump_buildkit, dump_json, dump_node, go_quote, render
from lamina.build.dockerfile.parser import (
    DockerfileNotFound,
    parse,
    parse_file,
)
from lamina.errors import DockerfileSyntaxError, InvalidArgument


def nodes(text: str | bytes) -> tuple[Node, ...]:
    return parse(text).nodes


def dumps(text: str | bytes) -> list[str]:
    return dump_buildkit(parse(text)).split("\n")


def syntax_error(text: str | bytes) -> DockerfileSyntaxError:
    with pytest.raises(DockerfileSyntaxError) as info:
        parse(text, "Dockerfile.test")
    assert info.value.file == "Dockerfile.test"
    assert "\n" not in info.value.message
    return info.value


# --------------------------------------------------------------------------- lines


def test_package_reexports_parse() -> None:
    assert package_parse is parse


def test_crlf_and_lf_give_the_same_tree() -> None:
    text = "FROM a\nRUN echo \\\n  hi\n# c\nCOPY <<EOF /x\nbody\nEOF\n"
    lf = parse(text)
    crlf = parse(text.replace("\n", "\r\n"))
    assert [dump_node(n) for n in lf.nodes] == [dump_node(n) for n in crlf.nodes]
    assert [n.span for n in lf.nodes] == [n.span for n in crlf.nodes]
    # heredoc bodies keep their own line endings
    assert crlf.nodes[2].heredocs[0].content == "body\r\n"
    assert lf.nodes[2].heredocs[0].content == "body\n"


def test_bom_is_ignored_in_bytes_and_text() -> None:
    assert dumps(b"\xef\xbb\xbfFROM a\n") == ['(from "a")']
    assert dumps("\ufeffFROM a\n") == ['(from "a")']
    # only at the very start
    assert dumps("FROM a\n\ufeffRUN x\n") == ['(from "a")', '(\ufeffrun "")']


def test_continuation_joins_without_separator_and_keeps_indent() -> None:
    (node,) = nodes("RUN echo goodbye\\\nfrog\\\n   hop")
    assert node.args == ("echo goodbyefrog   hop",)
    assert node.original == "RUN echo goodbyefrog   hop"
    assert (node.span.start_line, node.span.end_line) == (1, 3)


def test_comments_and_blank_lines_inside_a_continuation() -> None:
    doc = parse("RUN a \\\n# comment\n   # indented comment\n\n b\n")
    assert doc.nodes[0].args == ("a  b",)
    # the blank line (not the comments) is an empty continuation line
    assert len(doc.warnings) == 1
    assert doc.warnings[0].line == 5
    assert doc.warnings[0].url.endswith("/no-empty-continuation/")


def test_escaped_escape_is_not_a_continuation() -> None:
    doc = parse("ENV C a\\\\\nENV D b\n")
    assert [n.args for n in doc.nodes] == [("C", "a\\\\", ""), ("D", "b", "")]


def test_continuation_with_trailing_blanks_and_at_end_of_file() -> None:
    assert nodes("RUN a \\  \t\n b")[0].args == ("a  b",)
    assert nodes("FROM x\nRUN a \\")[1].args == ("a",)


def test_backtick_escape_directive() -> None:
    doc = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n")
    assert doc.escape == "`"
    assert doc.nodes[1].args == ("dir c:\\   && echo",)
    assert [(d.name, d.value, d.line) for d in doc.directives] == [("escape", "`", 1)]


def test_directives_only_count_at_the_top() -> None:
    doc = parse("# a comment\n# escape=`\nFROM x\nRUN a `\n")
    assert doc.escape == "\\"
    assert doc.directives == ()
    doc = parse("#!/bin/sh\n# syntax=x\nFROM x\n")
    assert doc.directive("syntax") is None  # the main parser does not skip shebangs
    doc = parse("# Syntax = docker/dockerfile:1 // c\n#check=skip=all\n\nFROM x\n")
    assert doc.directive("syntax") == "docker/dockerfile:1 // c"
    assert doc.directive("check") == "skip=all"


def test_directive_errors() -> None:
    err = syntax_error("# escape=`\n# escape=\\\nFROM x\n")
    assert "only one escape parser directive can be used" in err.message
    assert err.line == 2
    err = syntax_error("# escape=x\nFROM x\n")
    assert "invalid escape token 'x'" in err.message
    assert err.hint


def test_comments_are_kept_on_the_next_instruction() -> None:
    doc = parse("# first\n#\n# second\n  # third\nFROM x\nRUN y\n")
    assert doc.nodes[0].comments == ("second", "# third")
    assert doc.nodes[1].comments == ()


def test_unknown_instructions_become_nodes() -> None:
    (node,) = nodes("WOKRDIR /app\n")
    assert (node.cmd, node.keyword, node.args) == ("wokrdir", "WOKRDIR", ("",))
    assert dumps("FOO bar") == ['(foo "")']


def test_keyword_is_lowered_and_kept_as_written() -> None:
    (node,) = nodes("rUn\techo")
    assert (node.cmd, node.keyword, node.args) == ("run", "rUn", ("echo",))


def test_line_too_long_counts_bytes_and_names_the_line() -> None:
    err = syntax_error("FROM x\nRUN " + "a" * 65532 + "\n")
    assert "65535" in err.message and "line 2" in err.message
    assert parse("FROM x\nRUN " + "a" * 65531 + "\n").nodes[1].args[0] == "a" * 65531


def test_file_with_no_instructions() -> None:
    for text in ("", "\n\n", "# only\n#comments\n", "\ufeff", "   \t\n"):
        assert "file with no instructions" in syntax_error(text).message


def test_dangling_continuation_makes_an_empty_node() -> None:
    doc = parse("FROM x\n\\\n \\\n")
    assert (doc.nodes[1].cmd, doc.nodes[1].args) == ("", ("",))
    assert dumps("FROM x\n\\\n")[1] == '("")'


# --------------------------------------------------------------------------- argument shapes


def test_shell_and_exec_forms() -> None:
    run, cmd, entry, shell = nodes(
        'RUN echo "hi"\nCMD ["a", "b c"]\nENTRYPOINT [ ]\nSHELL ["/bin/sh", "-c"]'
    )
    assert (run.json, run.args) == (False, ('echo "hi"',))
    assert (cmd.json, cmd.args) == (True, ("a", "b c"))
    assert (entry.json, entry.args) == (True, ())
    assert (shell.json, shell.args) == (True, ("/bin/sh", "-c"))


@pytest.mark.parametrize(
    ("args", "expected_json", "expected"),
    [
        ('["a"] trailing', True, ("a",)),  # Go's json.Decoder reads one value only
        ("['a']", False, ("['a']",)),
        ('["a", 1e999]', False, ('["a", 1e999]',)),  # out of float64 range: not JSON
        ('["a", NaN]', False, ('["a", NaN]',)),
        ('["a\\u0000b", "\\ud800"]', True, ("a\0b", "\ufffd")),
        ('["\\/x"]', True, ("/x",)),
        ("[", False, ("[",)),
    ],
)
def test_exec_form_fallback_rules(
    args: str, expected_json: bool, expected: tuple[str, ...]
) -> None:
    (node,) = nodes("CMD " + args)
    assert (node.json, node.args) == (expected_json, expected)


def test_copy_add_volume_split_on_blanks_without_quotes() -> None:
    copy, add, volume = nodes('COPY "a b" c\nADD  x\t y \nVOLUME ["/v"]')
    assert copy.args == ('"a', 'b"', "c")
    assert add.args == ("x", "y")
    assert (volume.json, volume.args) == (True, ("/v",))


def test_from_and_expose_always_split() -> None:
    frm, expose = nodes('FROM img AS x\nEXPOSE ["80"]')
    assert frm.args == ("img", "AS", "x")
    assert (expose.json, expose.args) == (False, ('["80"]',))


def test_flags() -> None:
    node = nodes("COPY --from=build --chmod=755 \"--chown='a b'\" src /dst")[0]
    assert node.flags == ("--from=build", "--chmod=755")
    node = nodes('COPY --chown="a b" --link -- --not-a-flag /dst')[0]
    assert node.flags == ("--chown=a b", "--link")
    assert node.args == ("--not-a-flag", "/dst")
    node = nodes("RUN --mount=type=secret,id=x\\ y cat")[0]
    assert node.flags == ("--mount=type=secret,id=x y",)


def test_flag_bytes_are_read_one_by_one_like_buildkit() -> None:
    node = nodes("COPY --from=\u00e0b x y")[0]
    # U+00E0 is C3 A0; A0 counts as a space for Go's byte-wise scan
    assert node.flags == ("--from=\u00c3",)
    assert node.args == ("b", "x", "y")


def test_env_and_label_nodes() -> None:
    legacy, pairs, label, empty = nodes('ENV A b c  d\nENV x=1 y="2 3" z=\nLABEL "k"=v\nENV')
    assert legacy.args == ("A", "b c  d", "")
    assert pairs.args == ("x", "1", "=", "y", '"2 3"', "=", "z", "", "=")
    assert label.args == ('"k"', "v", "=")
    assert empty.args == ()


def test_env_errors_name_the_problem() -> None:
    err = syntax_error("FROM x\nENV PATH\n")
    assert "ENV must have two arguments" in err.message
    assert (err.line, err.column) == (2, 5)
    err = syntax_error("FROM x\nLABEL a=b c d=e\n")
    assert 'can\'t find = in "c"' in err.message
    assert (err.line, err.column) == (2, 11)


def test_arg_keeps_quotes_and_escapes() -> None:
    (node,) = nodes('ARG a="1 2" b\\ c d')
    assert node.args == ('a="1 2"', "b\\ c", "d")


def test_single_string_instructions() -> None:
    user, workdir, signal, maintainer, bare = nodes(
        "USER  me:grp \nWORKDIR /a b\nSTOPSIGNAL SIGKILL\nMAINTAINER Me <me@x>\nWORKDIR"
    )
    assert user.args == ("me:grp",)
    assert workdir.args == ("/a b",)
    assert signal.args == ("SIGKILL",)
    assert maintainer.args == ("Me <me@x>",)
    assert bare.args == ()


def test_healthcheck_forms() -> None:
    bare, none, shell, exe, other = nodes(
        "HEALTHCHECK\nHEALTHCHECK NONE\nHEALTHCHECK --interval=5s CMD curl -f x\n"
        'HEALTHCHECK CMD ["curl", "x"]\nHEALTHCHECK CONNECT TCP 7000'
    )
    assert bare.args == ()
    assert none.args == ("NONE",)
    assert (shell.flags, shell.args, shell.json) == (
        ("--interval=5s",),
        ("CMD", "curl -f x"),
        False,
    )
    assert (exe.args, exe.json) == (("CMD", "curl", "x"), True)
    assert other.args == ("CONNECT", "TCP 7000")


def test_onbuild_wraps_an_instruction() -> None:
    (node,) = nodes('ONBUILD COPY --from=b ["a", "/b"]')
    assert node.cmd == "onbuild" and node.args == ()
    assert node.sub is not None
    assert (node.sub.cmd, node.sub.flags, node.sub.args, node.sub.json) == (
        "copy",
        ("--from=b",),
        ("a", "/b"),
        True,
    )
    assert dump_node(node) == 'onbuild (copy ["--from=b"] "a" "/b")'
    assert nodes("ONBUILD")[0].sub is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD from alpine", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ],
)
def test_onbuild_restrictions(text: str, message: str) -> None:
    err = syntax_error("FROM x\n" + text + "\n")
    assert message in err.message
    assert (err.line, err.column) == (2, 9)


# --------------------------------------------------------------------------- heredocs


def test_heredocs_in_run_copy_add_and_onbuild() -> None:
    doc = parse(
        "FROM x\n"
        "RUN <<EOF bash\necho $HOME\nEOF\n"
        "COPY <<A 3<<-'B' /dst/\na\nA\nb\n\t\tB\n"
        'ADD <<"C" /c\nc\nC\n'
        "ONBUILD RUN <<D\nd\nD\n"
        "USER <<NOT\n"
    )
    run, copy, add, onbuild, user = doc.nodes[1:]
    assert [(h.name, h.content, h.expand) for h in run.heredocs] == [("EOF", "echo $HOME\n", True)]
    assert [(h.name, h.file_descriptor, h.chomp, h.expand) for h in copy.heredocs] == [
        ("A", 0, False, True),
        ("B", 3, True, False),
    ]
    assert copy.heredocs[1].content == "b\n"
    assert [(h.name, h.expand) for h in add.heredocs] == [("C", False)]
    assert [h.content for h in onbuild.heredocs] == ["d\n"]
    assert user.heredocs == ()
    assert [(n.span.start_line, n.span.end_line) for n in doc.nodes[1:]] == [
        (2, 4),
        (5, 9),
        (10, 12),
        (13, 15),
        (16, 16),
    ]


def test_heredoc_whitespace_and_json_form() -> None:
    doc = parse('FROM x\nRUN <<  EOF  > out\nbody\nEOF\nRUN ["<<EOF"]\n')
    assert [h.name for h in doc.nodes[1].heredocs] == ["EOF"]
    assert doc.nodes[2].heredocs == ()


def test_heredoc_body_at_end_of_file_without_newline() -> None:
    doc = parse("FROM x\nRUN <<EOF\nline\nEOF")
    assert doc.nodes[1].heredocs[0].content == "line\n"


def test_unterminated_heredoc_says_where_it_began() -> None:
    err = syntax_error("FROM x\nRUN echo && \\\n  cat <<-END\nbody\n\tEN\n")
    assert "unterminated heredoc <<-END" in err.message
    assert "opened on line 3" in err.message
    assert (err.line, err.column) == (3, 7)
    assert err.source_line == "  cat <<-END"
    assert "END" in err.hint
    err = syntax_error("FROM x\nCOPY <<A <<B /d\na\nA\nb\n")
    assert "<<B" in err.message
    assert (err.line, err.column) == (2, 10)


# --------------------------------------------------------------------------- spans, bytes


def test_spans_and_original() -> None:
    doc = parse("FROM x\n\n   RUN a \\\n   b  \n")
    run = doc.nodes[1]
    assert run.span.start_line == 3 and run.span.end_line == 4
    assert run.span.start_col == 4
    assert run.span.end_col == len("   b")
    assert run.original == "RUN a    b  "
    assert doc.source_lines == ("FROM x", "", "   RUN a \\", "   b  ")


def test_bytes_that_are_not_utf8_survive_and_dump_like_go() -> None:
    doc = parse(b"FROM x\nRUN echo \xff\n")
    assert doc.nodes[1].args == ("echo \udcff",)
    assert dumps(b"FROM x\nRUN echo \xff\n")[1] == '(run "echo \\xff")'
    # inside JSON strings and ARG words Go decodes them as U+FFFD
    assert nodes(b'CMD ["\xff"]')[0].args == ("\ufffd",)
    assert nodes(b"ARG a=\xff")[0].args == ("a=\ufffd",)


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", '"plain"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\x00\x07\x1b\x7f", '"\\x00\\a\\x1b\\x7f"'),
        ("\t\n\r\v\f\b", '"\\t\\n\\r\\v\\f\\b"'),
        ("♥ é", '"♥ é"'),
        ("\u00a0\u200b", '"\\u00a0\\u200b"'),
        ("\U000e0001", '"\\U000e0001"'),
        ("\udcc3", '"\\xc3"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_dump_json_fields() -> None:
    doc = parse('FROM x\nONBUILD --x RUN --mount=a ["b"]\nCOPY <<E /d\nhi\nE\n')
    frm, onbuild, copy = dump_json(doc)
    assert frm == {
        "cmd": "from",
        "sub_cmd": None,
        "json": False,
        "flags": [],
        "sub_flags": None,
        "value": ["x"],
        "start_line": 1,
        "end_line": 1,
        "original": "FROM x",
        "heredocs": [],
    }
    assert (onbuild["cmd"], onbuild["sub_cmd"], onbuild["json"]) == ("onbuild", "run", True)
    assert (onbuild["flags"], onbuild["sub_flags"], onbuild["value"]) == (
        ["--x"],
        ["--mount=a"],
        ["b"],
    )
    assert copy["heredocs"] == [
        {"name": "E", "content": "hi\n", "expand": True, "chomp": False, "file_descriptor": 0}
    ]
    assert (copy["start_line"], copy["end_line"]) == (3, 5)


def test_render_round_trip_example() -> None:
    text = "# escape=`\nFROM x\nRUN a `\n  b\n# c\nCOPY <<-X /d\n\tbody\n\tX\nENV k=v\n"
    doc = parse(text)
    rendered = render(doc)
    assert rendered == "# escape=`\n\nFROM x\nRUN a   b\nCOPY <<-X /d\n\tbody\nX\nENV k=v\n"
    assert [dump_node(n) for n in parse(rendered).nodes] == [dump_node(n) for n in doc.nodes]


# --------------------------------------------------------------------------- files


def test_parse_file(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"FROM x\n")
    doc = parse_file(path)
    assert doc.path == str(path)
    assert doc.nodes[0].args == ("x",)
    with pytest.raises(DockerfileNotFound) as info:
        parse_file(tmp_path / "missing")
    assert "missing" in info.value.message and info.value.hint
    with pytest.raises(InvalidArgument):
        parse_file(tmp_path)
    path.write_bytes(b"ENV x\n")
    with pytest.raises(DockerfileSyntaxError) as err:
        parse_file(path)
    assert err.value.file == str(path) and err.value.line == 1


def test_many_onbuilds_fail_fast_without_recursion() -> None:
    # continuation lines make a logical line longer than the physical-line limit
    err = syntax_error("FROM x\n" + "ONBUILD \\\n" * 9000 + "RUN x\n")
    assert "ONBUILD ONBUILD" in err.message
    assert (err.line, err.column) == (3, 1)


def test_render_folds_instructions_longer_than_a_physical_line() -> None:
    body = " ".join(f"pkg{i}" for i in range(20000)) + " #" * 3000 + " \\\\ x"
    text = "FROM x\nRUN apt-get install \\\n" + "\\\n".join(
        body[i : i + 60000] for i in range(0, len(body), 60000)
    )
    doc = parse(text)
    assert len(doc.nodes[1].original) > 65535
    rendered = render(doc)
    assert max(len(line) for line in rendered.split("\n")) < 65535
    assert parse(rendered).nodes[1].args == doc.nodes[1].args
