"""Build the Go load generator offline, once, into bench/.build/ (git-ignored).

Debian's packages give everything: `golang-go` the compiler, and
`golang-github-gorilla-websocket-dev` gorilla/websocket's source under /usr/share/gocode.
Building in GOPATH mode (GO111MODULE=off) with GOPATH=/usr/share/gocode resolves the import
from there, so the build never touches the network. The binary is rebuilt only when a
source file is newer than it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SOURCE_DIR = BENCH_DIR / "loadgen"
BUILD_DIR = BENCH_DIR / ".build"
BINARY = BUILD_DIR / "loadgen"
GOPATH = Path("/usr/share/gocode")
GORILLA = GOPATH / "src/github.com/gorilla/websocket"
APT_PACKAGES = ("golang-go", "golang-github-gorilla-websocket-dev")


class BuildError(RuntimeError):
    """The load generator could not be built; the message says what to install."""


def _go() -> str | None:
    return shutil.which("go") or (
        "/usr/lib/go/bin/go" if os.access("/usr/lib/go/bin/go", os.X_OK) else None
    )


def _install_with_apt() -> None:
    """Install the two Debian packages when apt-get is there and we are root."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"bench: installing {' '.join(APT_PACKAGES)} with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-q"], env=env, check=False,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", *APT_PACKAGES], env=env, check=False,
                   stdout=subprocess.DEVNULL)


def _up_to_date() -> bool:
    if not BINARY.exists():
        return False
    built = BINARY.stat().st_mtime
    return all(src.stat().st_mtime <= built for src in SOURCE_DIR.glob("*.go"))


def build_loadgen(install: bool = True) -> Path:
    """Return the path of an up-to-date load generator binary, building it if needed."""
    if _up_to_date():
        return BINARY
    go = _go()
    if (go is None or not GORILLA.is_dir()) and install:
        _install_with_apt()
        go = _go()
    if go is None or not GORILLA.is_dir():
        raise BuildError(
            "the load generator needs Go and gorilla/websocket: "
            f"apt-get install {' '.join(APT_PACKAGES)}"
        )
    BUILD_DIR.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        GO111MODULE="off",          # GOPATH mode: imports resolve under GOPATH, no module fetch
        GOPATH=str(GOPATH),
        GOCACHE=str(BUILD_DIR / "gocache"),
        GOPROXY="off",              # and never reach for the network
        GOFLAGS="",
        CGO_ENABLED="0",
    )
    result = subprocess.run(
        [go, "build", "-o", str(BINARY), "."],
        cwd=SOURCE_DIR, env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise BuildError(f"go build failed:\n{result.stderr}")
    return BINARY
