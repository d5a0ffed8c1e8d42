"""What a container runs: Docker's ENTRYPOINT / CMD combination, as one pure function.

An image config stores both ``Entrypoint`` and ``Cmd`` as argument lists.  A Dockerfile's
*shell form* (``CMD echo hi``) is already stored wrapped in the shell, as
``["/bin/sh", "-c", "echo hi"]``; the *exec form* (``CMD ["echo", "hi"]``) is stored as
written.  :func:`shell_form` does that wrapping.  At run time Docker concatenates
``entrypoint + cmd``, which gives its well-known table (``p1`` = first parameter):

==============================  ==================  ===============================  ================================
                                no ENTRYPOINT       ENTRYPOINT exec_entry p1 (shell)  ENTRYPOINT ["exec_entry", "p1"]
==============================  ==================  ===============================  ================================
no CMD                          error               /bin/sh -c exec_entry p1         exec_entry p1
CMD ["exec_cmd", "p1_cmd"]      exec_cmd p1_cmd     /bin/sh -c exec_entry p1 ...     exec_entry p1 exec_cmd p1_cmd
CMD exec_cmd p1_cmd (shell)     /bin/sh -c ...      /bin/sh -c exec_entry p1 ...     exec_entry p1 /bin/sh -c exec_cmd p1_cmd
==============================  ==================  ===============================  ================================

(With a shell-form ENTRYPOINT the CMD words land after ``-c "…"`` as ``$0 $1 …`` of the
shell, which ignores them: that is why the table shows them as having no effect.)

``docker run`` changes the inputs before the concatenation:

* arguments after the image name replace ``Cmd``;
* ``--entrypoint X`` replaces ``Entrypoint`` with the single word ``X`` (never split)
  *and* drops the image's ``Cmd``; ``--entrypoint ""`` drops both;
* an empty result is an error: ``no command specified``.
"""

from __future__ import annotations

from collections.abc import Sequence

from lamina.errors import InvalidArgument

__all__ = ["DEFAULT_SHELL", "resolve_command", "shell_form"]

#: Docker's default ``SHELL`` on Linux.
DEFAULT_SHELL: tuple[str, ...] = ("/bin/sh", "-c")


def shell_form(command: str, shell: Sequence[str] = DEFAULT_SHELL) -> tuple[str, ...]:
    """Wrap a shell-form instruction the way the image config stores it.

    >>> shell_form("echo $HOME")
    ('/bin/sh', '-c', 'echo $HOME')
    """
    return (*shell, command)


def resolve_command(
    entrypoint: Sequence[str] | None,
    cmd: Sequence[str] | None,
    *,
    args: Sequence[str] = (),
    entrypoint_override: str | None = None,
) -> tuple[str, ...]:
    """The argv a container runs, from its image config and ``docker run`` flags.

    ``entrypoint`` and ``cmd`` come from the image config (``None`` = not set);
    ``args`` are the words after the image name; ``entrypoint_override`` is the value
    of ``--entrypoint`` (``None`` when the flag was not given, ``""`` to clear it).

    >>> resolve_command(["/docker-entrypoint.sh"], ["nginx", "-g", "daemon off;"])
    ('/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;')
    >>> resolve_command(None, ["sh"], args=["echo", "hi"])
    ('echo', 'hi')
    >>> resolve_command(["/init"], ["serve"], entrypoint_override="", args=["ls"])
    ('ls',)
    """
    if entrypoint_override is not None:
        ep: tuple[str, ...] = (entrypoint_override,) if entrypoint_override else ()
        base_cmd: tuple[str, ...] = ()
    else:
        ep = tuple(entrypoint or ())
        base_cmd = tuple(cmd or ())
    final_cmd = tuple(args) if args else base_cmd
    argv = ep + final_cmd
    if not argv:
        raise InvalidArgument(
            "no command specified",
            hint="give a command after the image name, or build the image with CMD or ENTRYPOINT",
        )
    return argv
