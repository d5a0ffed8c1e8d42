"""Every rule: one Dockerfile that breaks it (the code is reported) and one that follows it.

The "good" Dockerfile is always the smallest change that fixes the "bad" one, so the
pair pins down exactly what the rule looks at.
"""

from __future__ import annotations

import pytest

from conftest import codes, lint
from lamina.lint.model import BaseFacts, ContextFacts, ContextItem, LintConfig, LintOptions
from lamina.lint.registry import rules_by_code

U = "USER 1000\n"  # keeps LM401 quiet where it is not the point

CASES: list[tuple[str, str, str]] = [
    ("LM101", "FROM node\n" + U, "FROM node:20\n" + U),
    ("LM102", "FROM ubuntu:latest\n" + U, "FROM ubuntu:24.04\n" + U),
    ("LM104", "FROM alpine:3.20 AS a\nFROM alpine:3.20 AS a\n" + U,
     "FROM alpine:3.20 AS a\nFROM alpine:3.20 AS b\n" + U),
    ("LM105", "FROM alpine:3.20 AS app\nCOPY --from=app /a /b\n" + U,
     "FROM alpine:3.20 AS build\nFROM alpine:3.20 AS app\nCOPY --from=build /a /b\n" + U),
    ("LM201", "FROM alpine:3.20\nWOKRDIR /app\n" + U, "FROM alpine:3.20\nWORKDIR /app\n" + U),
    ("LM202", "FROM alpine:3.20\nMAINTAINER me@example.com\n" + U,
     'FROM alpine:3.20\nLABEL org.opencontainers.image.authors="me@example.com"\n' + U),
    ("LM203", 'FROM alpine:3.20\n' + U + 'CMD ["a"]\nCMD ["b"]\n',
     'FROM alpine:3.20\n' + U + 'CMD ["b"]\n'),
    ("LM204", 'FROM alpine:3.20\n' + U + 'ENTRYPOINT ["a"]\nENTRYPOINT ["b"]\n',
     'FROM alpine:3.20\n' + U + 'ENTRYPOINT ["b"]\n'),
    ("LM205", "FROM alpine:3.20\n" + U + "CMD python app.py\n",
     'FROM alpine:3.20\n' + U + 'CMD ["python", "app.py"]\n'),
    ("LM206", "FROM alpine:3.20\nWORKDIR app\n" + U, "FROM alpine:3.20\nWORKDIR /app\n" + U),
    ("LM207", "FROM alpine:3.20\nADD run.sh /run.sh\n" + U,
     "FROM alpine:3.20\nADD app.tar.gz /opt/\nCOPY run.sh /run.sh\n" + U),
    ("LM208", "FROM alpine:3.20\nEXPOSE 8080:8080\n" + U, "FROM alpine:3.20\nEXPOSE 8080/tcp\n" + U),
    ("LM209", "FROM alpine:3.20\nRUN cd /src && make\n" + U,
     "FROM alpine:3.20\nWORKDIR /src\nRUN (cd sub && make) && make\n" + U),
    ("LM210", "FROM alpine:3.20\nRUN echo a\nRUN echo b\n" + U,
     "FROM alpine:3.20\nRUN echo a && echo b\n# a separate, explained step\nRUN echo c\n" + U),
    ("LM211", "FROM alpine:3.20\nENV PATH /opt/bin:$PATH\n" + U,
     "FROM alpine:3.20\nENV PATH=/opt/bin:$PATH\n" + U),
    ("LM212", "FROM alpine:3.20\nRUN echo a\nrun echo b\n" + U,
     "FROM alpine:3.20\nRUN echo a && echo b\n" + U),
    ("LM213", "FROM alpine:3.20 as build\nFROM alpine:3.20\n" + U,
     "FROM alpine:3.20 AS build\nFROM alpine:3.20\n" + U),
    ("LM301", "FROM alpine:3.20\nRUN apt-get update && apt-get install -y curl\n" + U,
     "FROM alpine:3.20\nRUN apk add --no-cache curl\n" + U),
    ("LM302", "FROM debian:12\nRUN apt-get update && apt-get upgrade -y "
     "&& rm -rf /var/lib/apt/lists/*\n" + U,
     "FROM debian:12\nRUN apt-get update && apt-get install -y --no-install-recommends curl "
     "&& rm -rf /var/lib/apt/lists/*\n" + U),
    ("LM303", "FROM debian:12\nRUN apt-get update\n" + U,
     "FROM debian:12\nRUN apt-get update && apt-get install -y --no-install-recommends curl "
     "&& rm -rf /var/lib/apt/lists/*\n" + U),
    ("LM304", "FROM debian:12\nRUN apt-get update && apt-get install --no-install-recommends "
     "curl && rm -rf /var/lib/apt/lists/*\n" + U,
     "FROM debian:12\nRUN apt-get update && apt-get install -qy --no-install-recommends curl "
     "&& rm -rf /var/lib/apt/lists/*\n" + U),
    ("LM305", "FROM debian:12\nRUN apt-get update && apt-get install -y curl "
     "&& rm -rf /var/lib/apt/lists/*\n" + U,
     "FROM debian:12\nRUN apt-get update && apt-get install -y --no-install-recommends curl "
     "&& rm -rf /var/lib/apt/lists/*\n" + U),
    ("LM306", "FROM debian:12\nRUN apt-get update && apt-get install -y "
     "--no-install-recommends curl\n" + U,
     "FROM debian:12\nRUN apt-get update && apt-get install -y --no-install-recommends curl "
     "&& rm -rf /var/lib/apt/lists/*\n" + U),
    ("LM307", "FROM python:3.12\nRUN pip install flask==3.0\n" + U,
     "FROM python:3.12\nRUN pip install --no-cache-dir flask==3.0\n" + U),
    ("LM308", "FROM alpine:3.20\nRUN apk add curl\n" + U,
     "FROM alpine:3.20\nRUN apk add --no-cache curl\n" + U),
    ("LM309", "FROM rockylinux:9\nRUN dnf install -y gcc\n" + U,
     "FROM rockylinux:9\nRUN dnf install -y gcc && dnf clean all\n" + U),
    ("LM310", "FROM alpine:3.20\nRUN sudo mkdir /opt/x\n" + U,
     "FROM alpine:3.20\nRUN mkdir /opt/x\n" + U),
    ("LM311", "FROM debian:12\nRUN curl -fsS https://x.example/i.sh | sh\n" + U,
     "FROM debian:12\nRUN set -o pipefail && curl -fsS https://x.example/i.sh | sh\n" + U),
    ("LM312", "FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci\n" + U,
     "FROM node:20\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\n"
     "COPY . .\n" + U),
    ("LM313", "FROM debian:12\nRUN <<EOF\nwget -q https://x.example/a\nunzip a\nEOF\n" + U,
     "FROM debian:12\nRUN <<EOF\nset -e\nwget -q https://x.example/a\nunzip a\nEOF\n" + U),
    ("LM314", "FROM alpine:3.20\nRUN chmod -R 777 /app\n" + U,
     "FROM alpine:3.20\nRUN chmod -R 755 /app && chmod 1777 /scratch\n" + U),
    ("LM401", "FROM alpine:3.20\nCMD [\"sh\"]\n", "FROM alpine:3.20\nUSER nobody\nCMD [\"sh\"]\n"),
    ("LM405", "FROM alpine:3.20\nUSER nobody\nUSER root\n", "FROM alpine:3.20\nUSER root\nUSER nobody\n"),
    ("LM402", "FROM python:3.12-alpine\nUSER app\n",
     "FROM python:3.12-alpine\nRUN adduser -D -u 1000 app\nUSER app\n"),
    ("LM406", "FROM python:3.12-alpine\nCOPY --chown=app:app . /app\n" + U,
     "FROM python:3.12-alpine\nRUN adduser -D -u 1000 app\nCOPY --chown=app:app . /app\n" + U),
    ("LM403", "FROM alpine:3.20\nENV DB_PASSWORD=hunter2\n" + U,
     "FROM alpine:3.20\nENV DB_PASSWORD_FILE=/run/secrets/db\n" + U),
    ("LM404", "FROM alpine:3.20\nCOPY id_rsa /root/.ssh/id_rsa\n" + U,
     "FROM alpine:3.20\nCOPY known_hosts /root/.ssh/known_hosts\n" + U),
]


def test_every_rule_has_a_case() -> None:
    covered = {c for c, _, _ in CASES} | {"LM103", "LM501", "LM502"}  # those need options
    assert covered == set(rules_by_code())


@pytest.mark.parametrize(("code", "bad", "good"), CASES, ids=[c[0] for c in CASES])
def test_rule_fires_on_bad_and_not_on_good(code: str, bad: str, good: str) -> None:
    assert code in codes(bad)
    assert code not in codes(good)


def test_untrusted_registry_only_with_configuration() -> None:
    text = "FROM quay.io/acme/app:1.0\n" + U
    assert "LM103" not in codes(text)
    cfg = LintOptions(config=LintConfig(trusted_registries=("ghcr.io",)))
    assert "LM103" in codes(text, cfg)
    ok = LintOptions(config=LintConfig(trusted_registries=("quay.io",)))
    assert "LM103" not in codes(text, ok)


def test_context_rules_need_a_context() -> None:
    text = "FROM alpine:3.20\nCOPY . /app\n" + U
    assert not {"LM501", "LM502"} & codes(text)
    bare = LintOptions(context=ContextFacts(has_dockerignore=False))
    assert "LM501" in codes(text, bare)
    exposed = LintOptions(context=ContextFacts(True, (ContextItem(".env", "env"),)))
    found = [f for f in lint(text, exposed) if f.code == "LM502"]
    assert [f.line for f in found] == [2] and ".env" in found[0].message
    clean = LintOptions(context=ContextFacts(has_dockerignore=True))
    assert not {"LM501", "LM502"} & codes(text, clean)


# --- the things others get wrong -------------------------------------------------------


def test_apt_advice_is_held_back_on_alpine() -> None:
    text = "FROM alpine:3.20\nRUN apt-get update\nRUN apt-get install curl\n" + U
    assert codes(text) & {"LM303", "LM304", "LM305", "LM306"} == set()
    assert "LM301" in codes(text)


def test_apk_on_debian_is_wrong_and_apk_advice_held_back() -> None:
    got = codes("FROM golang:1.22\nRUN apk add git\n" + U)
    assert "LM301" in got and "LM308" not in got


def test_from_arg_resolved_through_default_and_build_arg() -> None:
    text = "ARG BASE=node\nFROM ${BASE}\n" + U
    msgs = [f.message for f in lint(text) if f.code == "LM101"]
    assert msgs and "resolved from ${BASE}" in msgs[0]
    pinned = LintOptions(build_args={"BASE": "node:20.11"})
    assert "LM101" not in codes(text, pinned)
    # an ARG without default and no --build-arg: we cannot know, so we say nothing
    assert "LM101" not in codes("ARG BASE\nFROM ${BASE}\n" + U)


def test_from_stage_is_not_an_untagged_image() -> None:
    text = "FROM node:20 AS builder\nRUN echo hi\nFROM builder\n" + U
    assert not {"LM101", "LM102"} & codes(text)


def test_cache_mount_makes_cleanup_moot() -> None:
    text = ("FROM debian:12\nRUN --mount=type=cache,target=/var/lib/apt/lists "
            "apt-get update && apt-get install -y --no-install-recommends curl\n" + U)
    assert "LM306" not in codes(text)
    pip = "FROM python:3.12\nRUN --mount=type=cache,target=/root/.cache/pip pip install x==1\n" + U
    assert "LM307" not in codes(pip)


def test_size_advice_only_for_shipped_stages() -> None:
    text = ("FROM python:3.12 AS build\nRUN pip install build==1.0\n"
            "FROM python:3.12-slim\nCOPY --from=build /x /x\n" + U)
    assert "LM307" not in codes(text)
    # but a stage the final image is built FROM does ship
    chained = "FROM python:3.12 AS base\nRUN pip install build==1.0\nFROM base\n" + U
    assert "LM307" in codes(chained)


def test_no_user_only_checked_on_the_final_stage() -> None:
    text = "FROM golang:1.22 AS build\nRUN go build\nFROM alpine:3.20\nUSER nobody\n"
    assert "LM401" not in codes(text)
    assert "LM405" in codes("FROM alpine:3.20\nUSER nobody\nUSER root\n")


def test_user_from_parent_stage_and_local_facts() -> None:
    inherited = "FROM debian:12 AS base\nRUN useradd -m app\nFROM base\nUSER app\n"
    assert "LM402" not in codes(inherited)
    # unknown private image: we do not know its users, so stay quiet…
    assert "LM402" not in codes("FROM registry.example/team/base:1\nUSER svc\n")
    # …unless the local store says what it has
    facts = LintOptions(base_facts={"registry.example/team/base:1":
                                    BaseFacts(os_id="debian", users=frozenset({"root"}))})
    assert "LM402" in codes("FROM registry.example/team/base:1\nUSER svc\n", facts)


def test_local_os_release_overrides_the_name() -> None:
    facts = LintOptions(base_facts={"acme/base:1": BaseFacts(os_id="alpine")})
    assert "LM301" in codes("FROM acme/base:1\nRUN apt-get install -y x\n" + U, facts)
    assert "LM301" not in codes("FROM acme/base:1\nRUN apt-get install -y x\n" + U)


def test_heredoc_body_is_linted_as_shell() -> None:
    text = ("FROM debian:12\nRUN <<EOF\nset -e\napt-get update\n"
            "apt-get install -y wget\nEOF\n" + U)
    got = codes(text)
    assert {"LM305", "LM306"} <= got and "LM313" not in got


def test_shell_wrapped_commands_are_seen() -> None:
    assert "LM302" in codes("FROM debian:12\nRUN sh -c 'apt-get update && apt-get upgrade -y'\n" + U)


def test_unparseable_bash_falls_back_and_still_finds_commands() -> None:
    text = ('FROM debian:12\nRUN case "$(uname -m)" in x86_64) a=1;; esac; '
            "echo $((1+2)); apt-get update\n" + U)
    assert "LM303" in codes(text)


def test_secrets_by_value_and_not_for_public_key_ids() -> None:
    assert "LM403" in codes("FROM alpine:3.20\nENV AWS=AKIAIOSFODNN7EXAMPLE\n" + U)
    assert "LM403" in codes("FROM alpine:3.20\nARG NPM_TOKEN\n" + U)
    assert "LM403" not in codes("FROM alpine:3.20\nENV GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D\n" + U)


def test_unknown_instruction_linting_continues() -> None:
    found = lint("FROM alpine:3.20\nCOPPY a /a\nRUN sudo true\n" + U)
    assert {"LM201", "LM310"} <= {f.code for f in found}
    msg = next(f.message for f in found if f.code == "LM201")
    assert "did you mean 'COPY'" in msg
