"""ONBUILD triggers, COPY/ADD --chown owners (LM406) and keyword casing (LM212, LM213).

Each behaviour has a Dockerfile that breaks it and the smallest one that follows it,
and the finding is checked at its line and column, not only by code.
"""

from __future__ import annotations

from conftest import codes, lint, parse_df
from lamina.lint.analysis import analyze
from lamina.lint.fix import fix_text
from lamina.lint.model import BaseFacts, LintOptions

U = "USER 1000\n"


def _at(text: str, code: str, options: LintOptions | None = None) -> list[tuple[int, int]]:
    return [(f.line, f.column) for f in lint(text, options) if f.code == code]


# --- ONBUILD triggers ----------------------------------------------------------------


def test_trigger_run_is_linted_like_a_run() -> None:
    text = "FROM debian:12\nONBUILD RUN apt-get install curl\n" + U
    # -y missing (LM304), recommends (LM305), column of apt-get after "ONBUILD RUN "
    assert _at(text, "LM304") == [(2, 13)]
    assert "LM305" in codes(text)
    good = ("FROM debian:12\nONBUILD RUN apt-get update && apt-get install -y "
            "--no-install-recommends curl && rm -rf /var/lib/apt/lists/*\n" + U)
    assert not codes(good) & {"LM303", "LM304", "LM305", "LM306"}


def test_trigger_uses_the_stage_package_manager() -> None:
    # the child build runs FROM this image, so the Alpine base decides
    assert _at("FROM alpine:3.20\nONBUILD RUN apt-get install -y x\n" + U, "LM301") == [(2, 13)]
    assert "LM301" not in codes("FROM alpine:3.20\nONBUILD RUN apk add --no-cache x\n" + U)


def test_trigger_single_instruction_rules() -> None:
    assert _at("FROM alpine:3.20\nONBUILD WORKDIR app\n" + U, "LM206") == [(2, 9)]
    assert "LM206" not in codes("FROM alpine:3.20\nONBUILD WORKDIR /app\n" + U)
    assert "LM403" in codes("FROM alpine:3.20\nONBUILD ENV API_TOKEN=x\n" + U)
    assert "LM404" in codes("FROM alpine:3.20\nONBUILD COPY .env /app/.env\n" + U)
    assert "LM205" in codes("FROM alpine:3.20\n" + U + "ONBUILD CMD python app.py\n")
    assert "LM205" not in codes("FROM alpine:3.20\n" + U + 'ONBUILD CMD ["python", "app.py"]\n')


def test_trigger_keyword_fix_edits_the_trigger_not_onbuild() -> None:
    text = "FROM alpine:3.20\nONBUILD ADD run.sh /run.sh\n" + U
    assert _at(text, "LM207") == [(2, 9)]
    fixed = fix_text(text, lambda t: lint(t)).text
    assert fixed == "FROM alpine:3.20\nONBUILD COPY run.sh /run.sh\n" + U


def test_trigger_user_sees_the_whole_stage_but_does_not_change_it() -> None:
    # USER app as a trigger: the stage creates app later on, before the child build runs
    late = "FROM alpine:3.20\nONBUILD USER app\nRUN adduser -D app\n" + U
    assert "LM402" not in codes(late)
    # a trigger that creates a user helps later triggers ...
    chain = "FROM alpine:3.20\nONBUILD RUN adduser -D app\nONBUILD USER app\n" + U
    assert "LM402" not in codes(chain)
    # ... but not the stage itself, where it has not run yet
    stage = "FROM alpine:3.20\nONBUILD RUN adduser -D app\nUSER app\n"
    assert _at(stage, "LM402") == [(3, 1)]
    missing = [f for f in lint("FROM alpine:3.20\nONBUILD USER ghost\n" + U) if f.code == "LM402"]
    assert [(f.line, f.column) for f in missing] == [(2, 9)]
    assert "earlier triggers" in missing[0].message and "alpine:3.20" in missing[0].message


def test_trigger_is_recorded_in_the_analysis() -> None:
    doc = parse_df("FROM alpine:3.20\nonbuild  run echo hi\n")
    a = analyze(doc)
    outer = doc.nodes[1]
    assert outer.sub is not None
    assert a.triggers == {outer.sub: outer}
    assert a.instructions == (doc.nodes[0], outer, outer.sub)
    assert a.keyword_column(outer.sub) == 10
    assert outer.sub in a.runs


# --- LM406: --chown owners -----------------------------------------------------------


def test_chown_user_and_group_checked_separately() -> None:
    base = "FROM alpine:3.20\n"
    assert _at(base + "COPY --chown=ghost . /app\n" + U, "LM406") == [(2, 6)]
    msg = [f.message for f in lint(base + "COPY --chown=nobody:ghosts . /app\n" + U)
           if f.code == "LM406"]
    assert len(msg) == 1 and "group 'ghosts'" in msg[0]
    assert "LM406" not in codes(base + "COPY --chown=nobody:nogroup . /app\n" + U)
    assert "LM406" not in codes(base + "COPY --chown=1000:1000 . /app\n" + U)
    assert "LM406" in codes(base + "ADD --chown=ghost a.tar.gz /app/\n" + U)


def test_chown_follows_useradd_groupadd_and_addgroup() -> None:
    base = "FROM debian:12\n"
    assert "LM406" not in codes(base + "RUN groupadd web && useradd -g web app\n"
                                "COPY --chown=app:web . /app\n" + U)
    # busybox "addgroup USER GROUP" adds a member; it creates no group
    assert "LM406" in codes("FROM alpine:3.20\nRUN adduser -D app && addgroup app wheel2\n"
                            "COPY --chown=app:wheel2 . /app\n" + U)
    assert "LM406" not in codes("FROM alpine:3.20\nRUN addgroup -S web && adduser -S -G web app\n"
                                "COPY --chown=app:web . /app\n" + U)


def test_chown_quiet_when_accounts_are_unknown() -> None:
    assert "LM406" not in codes("FROM ghcr.io/acme/base:1\nCOPY --chown=app . /app\n" + U)
    assert "LM406" not in codes("FROM alpine:3.20\nCOPY passwd /etc/passwd\n"
                                "COPY --chown=app . /app\n" + U)
    assert "LM406" not in codes("FROM alpine:3.20\nARG OWNER\nCOPY --chown=$OWNER . /app\n" + U)


def test_chown_expands_args_and_uses_store_facts() -> None:
    assert "LM406" in codes("FROM alpine:3.20\nARG OWNER=ghost\nCOPY --chown=${OWNER} . /a\n" + U)
    facts = LintOptions(base_facts={"acme/base:1": BaseFacts(
        os_id="debian", users=frozenset({"root", "svc"}), groups=frozenset({"root", "svc"}))})
    assert "LM406" not in codes("FROM acme/base:1\nCOPY --chown=svc:svc . /a\n" + U, facts)
    assert "LM406" in codes("FROM acme/base:1\nCOPY --chown=svc:web . /a\n" + U, facts)


def test_created_names_expand_stage_variables() -> None:
    text = ("FROM alpine:3.20\nARG user=jenkins\nRUN adduser -D ${user}\n"
            "COPY --chown=${user}:${user} . /app\nUSER ${user}\n")
    assert not codes(text) & {"LM402", "LM406"}
    # a name that cannot be resolved makes the accounts unknown, not wrong
    unknown = "FROM alpine:3.20\nARG user\nRUN adduser -D ${user}\nUSER app\n"
    assert "LM402" not in codes(unknown)


def test_chown_in_a_trigger() -> None:
    assert _at("FROM alpine:3.20\nONBUILD COPY --chown=app . /app\n" + U, "LM406") == [(2, 14)]
    assert "LM406" not in codes("FROM alpine:3.20\nRUN adduser -D app\n"
                                "ONBUILD COPY --chown=app . /app\n" + U)


# --- LM212 / LM213: casing -----------------------------------------------------------


def test_minority_and_mixed_casing_reported_with_fix() -> None:
    text = "from alpine:3.20\nrun echo a\nRUN echo b\nRun echo c\nuser 1000\n"
    assert _at(text, "LM212") == [(3, 1), (4, 1)]
    assert fix_text(text, lambda t: [f for f in lint(t) if f.code == "LM212"]).text == (
        "from alpine:3.20\nrun echo a\nrun echo b\nrun echo c\nuser 1000\n")


def test_casing_tie_prefers_upper_and_triggers_count() -> None:
    assert _at("FROM alpine:3.20\nuser 1000\n", "LM212") == [(2, 1)]
    assert _at("FROM alpine:3.20\nONBUILD run echo\n" + U, "LM212") == [(2, 9)]
    assert "LM212" not in codes("from alpine:3.20\nonbuild run echo\nuser 1000\n")


def test_from_as_casing() -> None:
    assert _at("FROM alpine:3.20 as build\n" + U, "LM213") == [(1, 18)]
    assert _at("from alpine:3.20 AS build\nuser 1000\n", "LM213") == [(1, 18)]
    assert "LM213" not in codes("from alpine:3.20 as build\nuser 1000\n")
    assert "LM213" not in codes("FROM alpine:3.20 AS as\n" + U)
    fixed = fix_text("FROM --platform=linux/amd64 alpine:3.20 As build\n" + U,
                     lambda t: [f for f in lint(t) if f.code == "LM213"]).text
    assert fixed == "FROM --platform=linux/amd64 alpine:3.20 AS build\n" + U
