"""ADD of a URL (served on loopback by the test), with and without --checksum."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    www = tmp_path / "www"
    www.mkdir()
    body = b"downloaded by ADD\n"
    (www / "file.txt").write_bytes(body)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(www), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.txt", body
    httpd.shutdown()
    httpd.server_close()


def lamina(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lamina", "--root", str(root), *args],
                          capture_output=True, text=True)


def test_add_url_downloads_and_checks_the_checksum(tmp_path: Path, busybox_rootfs_tar: Path,
                                                   server: tuple[str, bytes]) -> None:
    url, body = server
    root = tmp_path / "root"
    assert lamina(root, "import", str(busybox_rootfs_tar), "base:1").returncode == 0
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    good = hashlib.sha256(body).hexdigest()
    (ctx / "Dockerfile").write_text(
        f"FROM base:1\nADD {url} /plain.txt\nADD --checksum=sha256:{good} {url} /dir/\n")
    res = lamina(root, "build", "-t", "addurl:1", str(ctx))
    assert res.returncode == 0, res.stderr
    run = lamina(root, "run", "--rm", "addurl:1", "sh", "-c",
                 "cat /plain.txt /dir/file.txt; stat -c %a /plain.txt")
    assert run.returncode == 0, run.stderr
    assert run.stdout == body.decode() * 2 + "600\n"  # Docker gives downloaded files mode 0600

    (ctx / "Dockerfile").write_text(f"FROM base:1\nADD --checksum=sha256:{'0' * 64} {url} /x\n")
    bad = lamina(root, "build", "-t", "addurl:2", str(ctx))
    assert bad.returncode != 0
    assert "checksum mismatch" in bad.stderr and "Dockerfile:2" in bad.stderr
