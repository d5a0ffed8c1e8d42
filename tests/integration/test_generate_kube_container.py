"""`generate kube CONTAINER` carries the container's env, ports, command and binds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.root


def lamina(root: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "lamina", "--root", str(root), *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_container_becomes_deployment_and_service(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    root = tmp_path / "root"
    lamina(root, "import", "-c", "EXPOSE 80", str(busybox_rootfs_tar), "web:1")
    host_dir = tmp_path / "www"
    host_dir.mkdir()
    lamina(root, "create", "--name", "web1", "-e", "GREETING=hi", "-p", "8080:80",
           "-v", f"{host_dir}:/www", "web:1", "httpd", "-f", "-p", "80", "-h", "/www")
    docs = list(yaml.safe_load_all(lamina(root, "generate", "kube", "web1")))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    ctr = deploy["spec"]["template"]["spec"]["containers"][0]
    assert ctr["image"] == "web:1"
    assert {"name": "GREETING", "value": "hi"} in ctr["env"]
    assert [p["containerPort"] for p in ctr["ports"]] == [80]
    assert ctr.get("args", []) + ctr.get("command", []) == ["httpd", "-f", "-p", "80", "-h", "/www"]
    mount = ctr["volumeMounts"][0]
    vol = next(v for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert mount["mountPath"] == "/www" and vol["hostPath"]["path"] == str(host_dir)
    assert deploy["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [80]
    lamina(root, "rm", "web1")
