"""generate kube: Deployment/Service documents that follow the Kubernetes API shapes."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from lamina.cli import cli
from lamina.cli.cmd_generate import (
    KubeVolume,
    Workload,
    dns_label,
    kube_documents,
    render_yaml,
    workload_from_image,
)
from lamina.digest import Digest
from lamina.images.store import ImageStore, LayerInput
from lamina.oci import mediatypes
from lamina.oci._json import canonical_json

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def check_deployment(doc: dict[str, Any]) -> dict[str, Any]:
    """The rules of apps/v1 Deployment a schema validator would apply to what we emit."""
    assert doc["apiVersion"] == "apps/v1" and doc["kind"] == "Deployment"
    assert DNS_LABEL.fullmatch(doc["metadata"]["name"]) and len(doc["metadata"]["name"]) <= 63
    spec = doc["spec"]
    assert isinstance(spec["replicas"], int) and spec["replicas"] >= 0
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    pod = spec["template"]["spec"]
    volume_names = [v["name"] for v in pod.get("volumes", [])]
    assert len(set(volume_names)) == len(volume_names)
    for v in pod.get("volumes", []):
        assert DNS_LABEL.fullmatch(v["name"])
        kinds = {"emptyDir", "hostPath"} & v.keys()
        assert len(kinds) == 1
        if "hostPath" in v:
            assert v["hostPath"]["path"].startswith("/")
            assert v["hostPath"]["type"] in ("", "DirectoryOrCreate", "Directory")
    [c] = pod["containers"]
    assert DNS_LABEL.fullmatch(c["name"]) and isinstance(c["image"], str) and c["image"]
    for key in ("command", "args"):
        assert all(isinstance(x, str) for x in c.get(key, []))
    for e in c.get("env", []):
        assert ENV_NAME.fullmatch(e["name"]) and isinstance(e["value"], str)
    for p in c.get("ports", []):
        assert 0 < p["containerPort"] < 65536 and p["protocol"] in ("TCP", "UDP", "SCTP")
    for m in c.get("volumeMounts", []):
        assert m["name"] in volume_names and m["mountPath"].startswith("/")
    return c


def check_service(doc: dict[str, Any], deployment: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Service"
    assert doc["spec"]["type"] == "ClusterIP"
    assert doc["spec"]["selector"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    names = [p["name"] for p in doc["spec"]["ports"]]
    assert len(set(names)) == len(names)
    for p in doc["spec"]["ports"]:
        assert DNS_LABEL.fullmatch(p["name"]) and len(p["name"]) <= 15
        assert 0 < p["port"] < 65536 and p["targetPort"] == p["port"]


@pytest.mark.parametrize("text,label", [
    ("Team/My_App:1.0", "my-app"), ("nginx", "nginx"), ("___", "app"),
    ("127.0.0.1:5000/x/y@sha256:" + "a" * 64, "y"), ("a" * 80, "a" * 63),
])
def test_dns_labels(text: str, label: str) -> None:
    assert dns_label(text) == label


def test_full_workload() -> None:
    w = Workload(name="web", image="registry.example/web:2", command=("/entry",),
                 args=("--port", "8080"), env=(("PATH", "/bin"), ("MODE", "prod")),
                 ports=((8080, "TCP"), (53, "UDP")),
                 volumes=(KubeVolume("/data"), KubeVolume("/etc/conf", "/srv/conf", True)),
                 working_dir="/app", run_as_user=1000, run_as_group=1000)
    deployment, service = kube_documents(w, replicas=2)
    c = check_deployment(deployment)
    check_service(service, deployment)
    assert deployment["spec"]["replicas"] == 2
    assert c["command"] == ["/entry"] and c["args"] == ["--port", "8080"]
    assert c["env"] == [{"name": "PATH", "value": "/bin"}, {"name": "MODE", "value": "prod"}]
    assert c["workingDir"] == "/app"
    assert c["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["emptyDir"] == {}
    assert volumes[1]["hostPath"] == {"path": "/srv/conf", "type": "DirectoryOrCreate"}
    assert c["volumeMounts"][1] == {"name": volumes[1]["name"], "mountPath": "/etc/conf",
                                    "readOnly": True}
    assert [p["name"] for p in service["spec"]["ports"]] == ["8080-tcp", "53-udp"]
    # the YAML stream parses back to the same documents
    assert list(yaml.safe_load_all(render_yaml([deployment, service]))) == [deployment, service]


def test_no_ports_no_service() -> None:
    docs = kube_documents(Workload(name="batch", image="x"))
    assert [d["kind"] for d in docs] == ["Deployment"]
    assert kube_documents(Workload(name="a", image="x", ports=((80, "TCP"),)), service=False)[0]


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    s = ImageStore(tmp_path / "root")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("hello")
        ti.size = 2
        tar.addfile(ti, io.BytesIO(b"hi"))
    blob = buf.getvalue()
    diff = Digest.from_bytes(blob)
    cfg = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [str(diff)]},
           "config": {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
                      "Env": ["PATH=/usr/bin", "NGINX_VERSION=1.25"], "User": "101:101",
                      "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "WorkingDir": "/srv",
                      "Volumes": {"/var/cache/nginx": {}}}}
    s.add_image(canonical_json(cfg), [LayerInput(lambda: io.BytesIO(blob), mediatypes.OCI_LAYER,
                                                 diff, diff)], names=["127.0.0.1:5000/web/nginx:1"])
    return s


@pytest.mark.root
def test_workload_from_image_config(store: ImageStore) -> None:
    w = workload_from_image(store, "127.0.0.1:5000/web/nginx:1")
    assert w.name == "nginx" and w.image == "127.0.0.1:5000/web/nginx:1"
    assert w.command == ("/docker-entrypoint.sh",) and w.args == ("nginx", "-g", "daemon off;")
    assert w.ports == ((443, "TCP"), (80, "TCP")) or w.ports == ((80, "TCP"), (443, "TCP"))
    assert w.volumes == (KubeVolume("/var/cache/nginx"),)
    assert (w.run_as_user, w.run_as_group, w.working_dir) == (101, 101, "/srv")


@pytest.mark.root
def test_cli_generate_kube(store: ImageStore, tmp_path: Path) -> None:
    root = str(store.root)
    store.close()
    result = CliRunner().invoke(cli, ["--root", root, "generate", "kube", "127.0.0.1:5000/web/nginx:1"])
    assert result.exit_code == 0, result.output
    deployment, service = yaml.safe_load_all(result.output)
    check_deployment(deployment)
    check_service(service, deployment)
    out = tmp_path / "k.yaml"
    result = CliRunner().invoke(cli, ["--root", root, "generate", "kube", "--no-service", "-f",
                                      str(out), "127.0.0.1:5000/web/nginx:1"])
    assert result.exit_code == 0 and [d["kind"] for d in yaml.safe_load_all(out.read_text())] == \
        ["Deployment"]
    missing = CliRunner().invoke(cli, ["--root", root, "generate", "kube", "nothing-here"])
    assert missing.exit_code != 0
