"""Typed instructions: flags, arguments, values and error messages."""

from __future__ import annotations

import pytest

from lamina.build.dockerfile.instructions import (
    Add,
    Arg,
    ArgDef,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expander,
    Expose,
    From,
    Healthcheck,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Mount,
    Onbuild,
    PortSpec,
    Run,
    Shell,
    SourceContent,
    Stopsignal,
    User,
    Volume,
    Workdir,
    expand_instruction,
    parse_duration,
    parse_instructions,
    parse_port_spec,
    parse_size,
)
from lamina.build.dockerfile.parser import parse
from lamina.errors import DockerfileSyntaxError


def one(line: str) -> Instruction:
    """Type the last instruction of a tiny Dockerfile."""
    return parse_instructions(parse(f"FROM scratch\n{line}\n"))[-1]


def fails(line: str) -> DockerfileSyntaxError:
    with pytest.raises(DockerfileSyntaxError) as info:
        parse_instructions(parse(f"FROM scratch\n{line}\n", "ctx/Dockerfile"))
    err = info.value
    assert err.file == "ctx/Dockerfile"
    assert err.line == 2
    return err


# --- FROM -----------------------------------------------------------------------------


def test_from_forms() -> None:
    first = parse_instructions(parse("FROM --platform=$BUILDPLATFORM golang:1.22 As Build\n"))[0]
    assert isinstance(first, From)
    assert (first.image, first.stage_name, first.platform) == (
        "golang:1.22",
        "build",
        "$BUILDPLATFORM",
    )
    assert first.line == 1 and first.name == "FROM"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("FROM a AS 1st", "invalid name for build stage"),
        ("FROM a AS b_c!", "invalid name for build stage"),
        ("FROM a b", "FROM requires either one or three arguments"),
        ("FROM a AS", "FROM requires either one or three arguments"),
        ("FROM --platfrom=linux/amd64 a", "did you mean platform?"),
    ],
)
def test_from_errors(line: str, message: str) -> None:
    with pytest.raises(DockerfileSyntaxError, match=message):
        parse_instructions(parse(line + "\n"))


# --- RUN / CMD / ENTRYPOINT / SHELL -------------------------------------------------------


def test_run_shell_and_exec_forms() -> None:
    run = one("RUN apt-get update && \\\n  apt-get install -y curl")
    assert isinstance(run, Run)
    assert run.command == ("apt-get update &&   apt-get install -y curl",)
    assert run.prepend_shell and not run.json
    exec_run = one('RUN ["echo", "$HOME"]')
    assert isinstance(exec_run, Run)
    assert exec_run.command == ("echo", "$HOME") and exec_run.json


def test_run_mounts_network_security() -> None:
    run = one(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0700,uid=1000 "
        "--mount=type=secret,id=npmrc,target=/root/.npmrc,required "
        "--mount=type=bind,from=build,source=/out,target=/in,rw "
        "--mount=type=tmpfs,target=/tmp,size=64m "
        "--mount=type=ssh "
        "--network=none --security=insecure make"
    )
    assert isinstance(run, Run)
    cache, secret, bind, tmpfs, ssh = run.mounts
    assert cache == Mount(
        type="cache",
        target="/root/.cache",
        id="pip",
        sharing="locked",
        mode=0o700,
        uid=1000,
        readonly=False,
    )
    assert secret == Mount(type="secret", id="npmrc", target="/root/.npmrc", required=True)
    assert bind == Mount(type="bind", from_="build", source="/out", target="/in", readonly=False)
    assert tmpfs == Mount(type="tmpfs", target="/tmp", size=64 * 1024 * 1024, readonly=False)
    assert ssh == Mount(type="ssh")
    assert run.network == "none" and run.security == "insecure"
    assert len(run.mount_specs) == 5


def test_mount_defaults() -> None:
    run = one("RUN --mount=target=/src --mount=type=cache,dst=/c true")
    assert isinstance(run, Run)
    bind, cache = run.mounts
    assert bind.type == "bind" and bind.readonly
    assert cache.sharing == "shared" and not cache.readonly


def test_mount_values_with_variables_expand_later() -> None:
    run = one("RUN --mount=type=cache,target=$CACHE,id=${ID:-x} true")
    assert isinstance(run, Run)
    assert run.mounts[0].target == "$CACHE"
    expanded = expand_instruction(run, Expander({"CACHE": "/c"}))
    assert isinstance(expanded, Run)
    assert expanded.mounts[0] == Mount(
        type="cache", target="/c", id="x", sharing="shared", readonly=False
    )


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--mount=type=volume,target=/x", "unsupported mount type 'volume'"),
        ("--mount=type=cahce,target=/x", "did you mean cache?"),
        ("--mount=type=cache", "needs target="),
        ("--mount=type=bind,target=/x,mode=0755", "mode is not allowed"),
        ("--mount=type=bind,target=/x,required", "'required' does not apply"),
        ("--mount=type=cache,target=/x,sharing=everyone", "unsupported sharing value"),
        ("--mount=type=bind,target=/x,sharing=locked", "sharing does not apply"),
        ("--mount=type=secret", "needs id="),
        ("--mount=type=tmpfs,target=/t,size=lots", "invalid size"),
        ("--mount=type=cache,target=/x,mode=999", "invalid mode"),
        ("--mount=type=cache,target=/x,tagret=/y", "did you mean target?"),
        ("--mount=type=cache,target=/x,bogus", "must be a key=value pair"),
        ("--mount=type=bind,target=/x,from=$IMG", "does not support variable expansion"),
        ("--network=bridge", "unsupported network mode"),
        ("--security=maybe", "unsupported security mode"),
        ("--mount", "missing a value on flag --mount"),
        ("--privileged", "RUN accepts: --mount, --network, --security"),
    ],
)
def test_run_flag_errors(flag: str, message: str) -> None:
    err = fails(f"RUN {flag} true")
    assert message in str(err) or message in err.hint
    assert err.column == 5  # points at the flag


def test_cmd_entrypoint_shell() -> None:
    cmd = one('CMD ["nginx", "-g", "daemon off;"]')
    assert isinstance(cmd, Cmd) and cmd.command == ("nginx", "-g", "daemon off;")
    empty = one("CMD []")
    assert isinstance(empty, Cmd) and empty.command == () and empty.json
    entry = one("ENTRYPOINT exec app")
    assert isinstance(entry, Entrypoint) and entry.command == ("exec app",)
    shell = one('SHELL ["/bin/bash", "-o", "pipefail", "-c"]')
    assert isinstance(shell, Shell) and shell.shell[0] == "/bin/bash"
    assert "JSON form" in str(fails("SHELL /bin/bash -c"))


# --- COPY / ADD -------------------------------------------------------------------------


def test_copy_flags_and_heredoc_sources() -> None:
    doc = parse(
        "FROM scratch\n"
        "COPY --from=build --chown=app:app --chmod=0644 --link --parents "
        "--exclude=*.md --exclude=tmp a b <<-EOT /dst/\n"
        "\t\tbody $X\n"
        "EOT\n"
    )
    copy = parse_instructions(doc)[1]
    assert isinstance(copy, Copy)
    assert copy.sources == ("a", "b") and copy.dest == "/dst/"
    assert copy.contents == (SourceContent(path="EOT", data="body $X\n", expand=True),)
    assert (copy.from_, copy.chown, copy.chmod) == ("build", "app:app", "0644")
    assert copy.link and copy.parents and copy.excludes == ("*.md", "tmp")


def test_add_flags() -> None:
    digest = "sha256:" + "ab" * 32
    add = one(
        f"ADD --checksum={digest} --keep-git-dir --unpack=false --chmod=u+x,go-w "
        "https://example.com/x.tgz /opt/"
    )
    assert isinstance(add, Add)
    assert add.checksum == digest and add.keep_git_dir and add.unpack is False
    assert add.chmod == "u+x,go-w" and add.dest == "/opt/"
    plain = one("ADD a.tar /x")
    assert isinstance(plain, Add) and plain.unpack is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("COPY onlyone", "requires at least two arguments"),
        ("COPY --chmod=888 a b", "invalid --chmod value"),
        ("COPY --chmod=rwx a b", "invalid --chmod value"),
        ("COPY --keep-git-dir a b", "unknown flag for COPY: --keep-git-dir"),
        ("COPY --form=x a b", "did you mean from?"),
        ("COPY --link=maybe a b", "expecting a boolean value"),
        ("COPY --from=a --from=b x y", "duplicate flag --from"),
        ("COPY --exclude=[ a b", "invalid --exclude pattern"),
        ("ADD --checksum=md5:abc a b", "invalid --checksum value"),
        ("ADD --from=x a b", "unknown flag for ADD: --from"),
    ],
)
def test_copy_add_errors(line: str, message: str) -> None:
    err = fails(line)
    assert message in str(err)


def test_copy_heredoc_destination_is_an_error() -> None:
    with pytest.raises(DockerfileSyntaxError, match="heredoc as a destination"):
        parse_instructions(parse("FROM scratch\nCOPY a <<EOF\nx\nEOF\n"))


def test_copy_expansion() -> None:
    copy = one('COPY --chown=$U --chmod=${MODE} --from=$S ${SRC}/x "$D"')
    assert isinstance(copy, Copy)
    ex = Expander({"U": "1000", "MODE": "755", "S": "builder", "SRC": "app", "D": "/a b"})
    expanded = expand_instruction(copy, ex)
    assert isinstance(expanded, Copy)
    assert (expanded.chown, expanded.chmod, expanded.from_) == ("1000", "755", "builder")
    assert expanded.sources == ("app/x",) and expanded.dest == "/a b"
    assert ex.matched == {"U", "MODE", "S", "SRC", "D"}
    with pytest.raises(DockerfileSyntaxError, match="invalid --chmod"):
        expand_instruction(copy, Expander({"MODE": "nope"}))


# --- ENV / LABEL / ARG ------------------------------------------------------------------


def test_env_label_arg() -> None:
    env = one('ENV A=1 B="two words" C=${A}')
    assert isinstance(env, Env)
    assert env.pairs == (
        KeyValue("A", "1"),
        KeyValue("B", '"two words"'),
        KeyValue("C", "${A}"),
    )
    legacy = one("ENV PATH /usr/bin:$PATH")
    assert isinstance(legacy, Env) and legacy.pairs == (KeyValue("PATH", "/usr/bin:$PATH", True),)
    expanded = expand_instruction(env, Expander({"A": "old"}))
    assert isinstance(expanded, Env)
    assert [p.value for p in expanded.pairs] == ["1", "two words", "old"]  # sees the old A
    label = one('LABEL org.opencontainers.image.title="My app" version=1')
    assert isinstance(label, Label) and label.pairs[0].key == "org.opencontainers.image.title"
    arg = one('ARG A B=2 C="x y"')
    assert isinstance(arg, Arg)
    assert arg.args == (ArgDef("A"), ArgDef("B", "2"), ArgDef("C", '"x y"'))
    assert "ARG names can not be blank" in str(fails("ARG =x"))


# --- single-argument instructions ------------------------------------------------------


def test_single_argument_instructions() -> None:
    workdir = one("WORKDIR /app")
    assert isinstance(workdir, Workdir) and workdir.path == "/app"
    user = one("USER app:staff")
    assert isinstance(user, User) and user.user == "app:staff"
    maint = one("MAINTAINER Jane <jane@example.com>")
    assert isinstance(maint, Maintainer) and maint.maintainer == "Jane <jane@example.com>"
    sig = one("STOPSIGNAL SIGQUIT")
    assert isinstance(sig, Stopsignal) and sig.signal == "SIGQUIT"
    assert isinstance(one("STOPSIGNAL 9"), Stopsignal)
    assert isinstance(one("STOPSIGNAL rtmin+3"), Stopsignal)
    assert "invalid signal" in str(fails("STOPSIGNAL SIGBOGUS"))
    assert "invalid signal" in str(fails("STOPSIGNAL 0"))
    expanded = expand_instruction(one("STOPSIGNAL $S"), Expander({"S": "TERM"}))
    assert isinstance(expanded, Stopsignal) and expanded.signal == "TERM"
    with pytest.raises(DockerfileSyntaxError, match="invalid signal"):
        expand_instruction(one("STOPSIGNAL $S"), Expander({"S": "NOPE"}))


def test_volume_and_expose() -> None:
    vol = one('VOLUME ["/data", "/logs"]')
    assert isinstance(vol, Volume) and vol.paths == ("/data", "/logs")
    expose = one("EXPOSE 80 443/TCP 53/udp 8000-8002")
    assert isinstance(expose, Expose)
    specs = expose.port_specs()
    assert specs[1] == PortSpec(443, 443, "tcp")
    assert [k for s in specs for k in s.exposed_ports()] == [
        "80/tcp",
        "443/tcp",
        "53/udp",
        "8000/tcp",
        "8001/tcp",
        "8002/tcp",
    ]
    assert "invalid protocol" in str(fails("EXPOSE 80/http"))
    assert "end before start" in str(fails("EXPOSE 90-80"))
    assert "invalid port" in str(fails("EXPOSE 70000"))
    variable = one("EXPOSE $PORTS")
    expanded = expand_instruction(variable, Expander({"PORTS": "80 81/udp"}))
    assert isinstance(expanded, Expose) and expanded.ports == ("80", "81/udp")


# --- HEALTHCHECK / ONBUILD ------------------------------------------------------------


def test_healthcheck() -> None:
    hc = one(
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms "
        "--start-interval=2s --retries=3 CMD curl -f http://localhost/ || exit 1"
    )
    assert isinstance(hc, Healthcheck)
    assert hc.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    assert hc.interval == 30 * 10**9 and hc.timeout == 90 * 10**9
    assert hc.start_period == 5 * 10**8 and hc.start_interval == 2 * 10**9 and hc.retries == 3
    exec_hc = one('HEALTHCHECK CMD ["/bin/check", "--quick"]')
    assert isinstance(exec_hc, Healthcheck) and exec_hc.test == ("CMD", "/bin/check", "--quick")
    assert exec_hc.interval is None and exec_hc.retries is None
    none = one("HEALTHCHECK NONE")
    assert isinstance(none, Healthcheck) and none.disabled


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("HEALTHCHECK", "requires at least one argument"),
        ("HEALTHCHECK NONE extra", "takes no arguments"),
        ("HEALTHCHECK CONNECT x", "unknown type 'CONNECT' in HEALTHCHECK (try CMD)"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK --interval=soon CMD x", "invalid duration --interval=soon"),
        ("HEALTHCHECK --interval=0s CMD x", "cannot be less than 1ms"),
        ("HEALTHCHECK --retries=0 CMD x", "must be at least 1"),
        ("HEALTHCHECK --retry=3 CMD x", "did you mean retries?"),
    ],
)
def test_healthcheck_errors(line: str, message: str) -> None:
    assert message in str(fails(line))


def test_onbuild() -> None:
    onb = one("ONBUILD RUN make install")
    assert isinstance(onb, Onbuild)
    assert onb.expression == "RUN make install"
    assert isinstance(onb.trigger, Run) and onb.trigger.command == ("make install",)
    assert "Chaining ONBUILD" in str(fails("ONBUILD ONBUILD RUN x"))
    assert "FROM isn't allowed as an ONBUILD trigger" in str(fails("ONBUILD FROM x"))
    assert "unknown flag for COPY" in str(fails("ONBUILD COPY --nope a b"))


# --- unknown instruction and locations ----------------------------------------------


def test_unknown_instruction_suggests() -> None:
    err = fails("WOKRDIR /app")
    assert "unknown instruction: WOKRDIR (did you mean WORKDIR?)" in str(err)
    assert err.source_line == "WOKRDIR /app"
    assert "WORKDIR" in err.hint


def test_flag_error_points_at_the_flag_on_a_continuation_line() -> None:
    text = "FROM scratch\nCOPY --link \\\n    --chmod=9 a b\n"
    with pytest.raises(DockerfileSyntaxError) as info:
        parse_instructions(parse(text))
    err = info.value
    assert (err.line, err.column) == (3, 5)
    assert err.source_line == "    --chmod=9 a b"


def test_instructions_keep_their_nodes() -> None:
    run = one("RUN true")
    assert run.node.cmd == "run" and run.node.span.start_line == 2
    assert run == Run(command=("true",), node=one("RUN  true").node)  # node not compared


# --- value grammars --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("1s", 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("300ms", 3 * 10**8),
        ("2us", 2000),
        ("1µs", 1000),
        (".5s", 5 * 10**8),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "1x", "s", "1s2", "--1s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_size_and_ports() -> None:
    assert parse_size("512") == 512
    assert parse_size("1k") == 1024 and parse_size("1.5GiB") == 3 * 2**29
    assert parse_port_spec("127.0.0.1:8080:80/udp") == PortSpec(80, 80, "udp")
    with pytest.raises(ValueError):
        parse_size("1x")
