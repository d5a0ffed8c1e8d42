"""What an image name says about the image: its tag, its OS family, its users.

The linter often needs to know what a base image is before anything is pulled.
The name and tag say a lot: ``python:3.12-alpine`` is Alpine (``apk``),
``node:20-bookworm-slim`` is Debian (``apt-get``), ``rockylinux:9`` uses
``dnf``/``yum``.  :func:`infer_os` encodes that knowledge for the official images;
when the image is in the local store, its ``/etc/os-release`` (via
:class:`~lamina.lint.model.BaseFacts`) wins over the guess.

:func:`known_users` lists the accounts an image is known to ship, so that
``USER node`` on ``node:20`` is fine while ``USER work`` on ``python:alpine`` is
not.  When an image is unknown the function returns ``None``: "we do not know"
is different from "it has no users", and the USER rule stays quiet then.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina.lint.model import BaseFacts

__all__ = [
    "ImageName",
    "OSFamily",
    "infer_os",
    "known_groups",
    "known_users",
    "os_family",
    "parse_image",
]


@dataclass(frozen=True)
class ImageName:
    """A ``FROM`` reference split into its parts (no normalisation beyond that).

    ``registry`` is ``None`` for Docker Hub short names; ``repository`` the path
    (``library/`` removed); ``tag`` and ``digest`` are ``None`` when absent.
    """

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    @property
    def short(self) -> str:
        """The last path component (``docker.io/library/python`` → ``python``)."""
        return self.repository.rsplit("/", 1)[-1]


def parse_image(ref: str) -> ImageName:
    """Split ``[registry/]repo[:tag][@digest]`` (``localhost:5000/x:1`` keeps its port)."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1 :]
    registry = None
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, ref = first, rest
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        registry = None
    if ref.startswith("library/") and registry is None:
        ref = ref[len("library/") :]
    return ImageName(registry, ref, tag, digest)


# --- OS families ---------------------------------------------------------------------

OSFamily = str  # "apk" | "apt" | "rpm" | "zypper" | "windows" | "none"

_OS_TO_FAMILY = {
    "alpine": "apk", "wolfi": "apk", "chainguard": "apk",
    "debian": "apt", "ubuntu": "apt", "raspbian": "apt", "linuxmint": "apt", "kali": "apt",
    "centos": "rpm", "fedora": "rpm", "rhel": "rpm", "rocky": "rpm", "rockylinux": "rpm",
    "almalinux": "rpm", "amzn": "rpm", "amazonlinux": "rpm", "ol": "rpm", "oraclelinux": "rpm",
    "ubi": "rpm", "ubi8": "rpm", "ubi9": "rpm", "photon": "rpm", "mariner": "rpm",
    "opensuse": "zypper", "sles": "zypper", "opensuse-leap": "zypper",
    "opensuse-tumbleweed": "zypper",
}
_DEBIAN_TAG_WORDS = ("bookworm", "bullseye", "buster", "stretch", "trixie", "jessie", "sid",
                     "forky", "focal", "jammy", "noble", "bionic", "xenial", "oracular",
                     "debian", "ubuntu")
# Official images whose default variant is Debian-based (apt-get works there).
_DEBIAN_DEFAULT = frozenset(
    {"python", "node", "golang", "ruby", "php", "openjdk", "postgres", "redis", "nginx",
     "httpd", "rust", "gcc", "perl", "buildpack-deps", "elixir", "erlang", "haskell",
     "julia", "r-base", "wordpress", "drupal", "ghost", "rabbitmq", "memcached",
     "mariadb", "mongo", "eclipse-temurin", "maven", "gradle", "tomcat", "jenkins",
     "sonarqube", "django", "clojure", "swift", "dart", "composer", "varnish", "cassandra",
     "elasticsearch", "kibana", "logstash", "odoo", "nextcloud", "neo4j", "influxdb",
     "zookeeper", "couchdb", "solr", "jetty", "groovy", "pypy", "sapmachine",
     "ibmjava", "amazoncorretto", "bitnami"})
_RPM_DEFAULT = frozenset({"mysql", "amazoncorretto", "oraclelinux"})
_APK_DEFAULT = frozenset({"bash", "docker", "traefik", "caddy", "vault", "consul",
                          "telegraf", "haproxy-alpine"})
_NO_PM = frozenset({"scratch", "busybox", "distroless", "static", "static-debian12",
                    "base-debian12", "cc-debian12"})


def infer_os(ref: str, facts: BaseFacts | None = None) -> str | None:
    """The OS family package manager of an image: ``apk``, ``apt``, ``rpm``, ``zypper``…

    Facts from the local store win; otherwise the name and tag are read.  Returns
    ``None`` when the name says nothing (a private image, say).
    """
    if facts is not None and facts.os_id:
        return os_family(facts.os_id, facts.os_id_like)
    name = parse_image(ref)
    short = name.short.lower()
    tag = (name.tag or "").lower()
    repo = name.repository.lower()
    if "windowsservercore" in tag or "nanoserver" in tag or "windows" in repo:
        return "windows"
    if short in _NO_PM or "distroless" in repo or repo.startswith("chainguard/"):
        return "none"
    if "alpine" in tag or short == "alpine":
        return "apk"
    if short in _OS_TO_FAMILY:
        return _OS_TO_FAMILY[short]
    for part in repo.split("/"):
        if part in _OS_TO_FAMILY:
            return _OS_TO_FAMILY[part]
    if any(word in tag for word in _DEBIAN_TAG_WORDS):
        return "apt"
    if "oraclelinux" in tag or "ubi" in tag.split("-") or tag.startswith("ubi"):
        return "rpm"
    if name.registry is None and "/" not in name.repository:
        if short in _RPM_DEFAULT:
            return "rpm"
        if short in _APK_DEFAULT:
            return "apk"
        if short in _DEBIAN_DEFAULT:
            return "apt"
    return None


def os_family(os_id: str, id_like: tuple[str, ...] = ()) -> str | None:
    """Family of an ``/etc/os-release`` ``ID`` (with ``ID_LIKE`` as a fallback)."""
    for word in (os_id, *id_like):
        fam = _OS_TO_FAMILY.get(word.lower())
        if fam:
            return fam
    return None


# --- users ---------------------------------------------------------------------------

_DEBIAN_USERS = frozenset(
    {"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
     "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt"})
_ALPINE_USERS = frozenset(
    {"root", "bin", "daemon", "adm", "lp", "sync", "shutdown", "halt", "mail", "news",
     "uucp", "operator", "man", "postmaster", "cron", "ftp", "sshd", "at", "squid", "xfs",
     "games", "cyrus", "vpopmail", "ntp", "smmsp", "guest", "nobody"})
_RPM_USERS = frozenset(
    {"root", "bin", "daemon", "adm", "lp", "sync", "shutdown", "halt", "mail", "operator",
     "games", "ftp", "nobody", "dbus", "systemd-network"})
# Users that official images add on top of their OS.
_IMAGE_USERS = {
    "node": {"node"}, "nginx": {"nginx"}, "postgres": {"postgres"}, "redis": {"redis"},
    "mongo": {"mongodb"}, "mysql": {"mysql"}, "mariadb": {"mysql"}, "rabbitmq": {"rabbitmq"},
    "memcached": {"memcache"}, "jenkins": {"jenkins"}, "elasticsearch": {"elasticsearch"},
    "cassandra": {"cassandra"}, "couchdb": {"couchdb"}, "solr": {"solr"},
    "zookeeper": {"zookeeper"}, "neo4j": {"neo4j"}, "influxdb": {"influxdb"},
    "ghost": {"node"}, "sonarqube": {"sonarqube"}, "tomcat": set(), "httpd": set(),
    "php": set(), "python": set(), "golang": set(), "ruby": set(), "rust": set(),
    "openjdk": set(), "eclipse-temurin": {"ubuntu"}, "ubuntu": {"ubuntu"}, "debian": set(),
    "alpine": set(), "busybox": {"root", "daemon", "bin", "sys", "sync", "mail", "www-data",
                                 "operator", "nobody"},
    "centos": set(), "fedora": set(), "rockylinux": set(), "almalinux": set(),
    "caddy": set(), "traefik": set(), "haproxy": {"haproxy"}, "varnish": {"varnish"},
    "docker": {"dockremap"}, "maven": set(), "gradle": {"gradle"}, "perl": set(),
    "gcc": set(), "buildpack-deps": set(), "erlang": set(), "elixir": set(),
}


def known_users(ref: str, facts: BaseFacts | None = None) -> frozenset[str] | None:
    """Names of the accounts ``ref`` ships, or ``None`` when that is not known.

    Local facts (``/etc/passwd`` of a stored image) win.  Otherwise only official
    images we know, and ``scratch`` (no users at all), give an answer.
    """
    if facts is not None and facts.users:
        return facts.users
    name = parse_image(ref)
    if name.registry is not None or "/" in name.repository:
        return None
    short = name.short.lower()
    if short == "scratch":
        return frozenset()
    extra = _IMAGE_USERS.get(short)
    if extra is None:
        return None
    family = infer_os(ref)
    base = {"apk": _ALPINE_USERS, "apt": _DEBIAN_USERS, "rpm": _RPM_USERS}.get(family or "")
    if base is None:
        return None if short != "busybox" else frozenset(extra)
    return base | frozenset(extra)


_DEBIAN_GROUPS = frozenset(
    {"root", "daemon", "bin", "sys", "adm", "tty", "disk", "lp", "mail", "news", "uucp", "man",
     "proxy", "kmem", "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio",
     "dip", "www-data", "backup", "operator", "list", "irc", "src", "gnats", "shadow", "utmp",
     "video", "sasl", "plugdev", "staff", "games", "users", "nogroup"})
_ALPINE_GROUPS = frozenset(
    {"root", "bin", "daemon", "sys", "adm", "tty", "disk", "lp", "mem", "kmem", "wheel",
     "floppy", "mail", "news", "uucp", "man", "cron", "console", "audio", "cdrom", "dialout",
     "ftp", "sshd", "input", "at", "tape", "video", "netdev", "readproc", "squid", "xfs",
     "kvm", "games", "shadow", "cdrw", "www-data", "usb", "vpopmail", "users", "ntp",
     "nofiles", "smmsp", "locate", "abuild", "utmp", "ping", "nogroup", "nobody"})
_RPM_GROUPS = frozenset(
    {"root", "bin", "daemon", "sys", "adm", "tty", "disk", "lp", "mem", "kmem", "wheel",
     "cdrom", "mail", "man", "dialout", "floppy", "games", "tape", "video", "ftp", "lock",
     "audio", "users", "nobody", "utmp", "utempter", "input", "kvm", "render", "dbus",
     "systemd-journal", "systemd-network"})


def known_groups(ref: str, facts: BaseFacts | None = None) -> frozenset[str] | None:
    """Names of the groups ``ref`` ships, or ``None`` when that is not known.

    Like :func:`known_users`: ``/etc/group`` of a stored image wins; otherwise the
    distribution's default groups plus one group per account the official image adds
    (``node`` has group ``node``), or nothing for ``scratch``.
    """
    if facts is not None and (facts.groups or facts.users):
        return facts.groups or None  # a stored image without /etc/group: do not guess
    if known_users(ref) is None:
        return None
    short = parse_image(ref).short.lower()
    if short == "scratch":
        return frozenset()
    family = infer_os(ref)
    base = {"apk": _ALPINE_GROUPS, "apt": _DEBIAN_GROUPS, "rpm": _RPM_GROUPS}.get(family or "")
    if base is None:
        return None
    return base | frozenset(_IMAGE_USERS.get(short, set()))
