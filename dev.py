#!/usr/bin/env python3
"""Set up and run hearth with nothing but Python 3.11+.

    python3 dev.py demo     # create .venv, install hearth, run the 1,000-household demo
    python3 dev.py test     # create .venv, install hearth with dev tools, lint, type-check, test
                            # (as root with apt-get, also Debian's chromium for the report test)
    python3 dev.py bench    # the throughput benchmark (extra arguments are passed on)

Uses only the standard library, so it runs before anything is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
BIN = os.path.join(VENV, "Scripts" if os.name == "nt" else "bin")
PY = os.path.join(BIN, "python")


def sh(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def setup(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before anything is checked
        sys.exit(f"hearth needs Python 3.11+, this is {sys.version.split()[0]}")
    # a .venv whose creation was interrupted has python but no pip: make it again
    if not os.path.exists(PY) or subprocess.run([PY, "-m", "pip", "--version"], cwd=ROOT,
                                                capture_output=True).returncode != 0:
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    stamp = os.path.join(VENV, f".installed-{extras}")
    pyproject = os.path.join(ROOT, "pyproject.toml")
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(pyproject):
        sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        sh(PY, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]")
        with open(stamp, "w") as f:
            f.write("ok\n")


CHROMIUM = "/usr/bin/chromium"


def ensure_chromium() -> None:
    """Install Debian's chromium for the report's browser test when it is missing and
    this is root with apt-get; any failure is one printed line (that test then skips)."""
    if os.path.exists(CHROMIUM):
        return
    if getattr(os, "geteuid", lambda: -1)() != 0 or shutil.which("apt-get") is None:
        print(f"- {CHROMIUM} missing and not root with apt-get: the report's browser test "
              "will skip (install it with: apt-get install chromium)", flush=True)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]

    def quiet(cmd: list[str]) -> bool:
        try:  # bounded, so a held dpkg lock or a dead mirror never stalls the tests
            return subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  check=False, timeout=900).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False

    print("+ apt-get install chromium (for the report's browser test)", flush=True)
    # the package lists may be missing or stale: update once and try again
    if not quiet(install) and not (quiet(["apt-get", "update", "-qq"]) and quiet(install)):
        print("- could not install chromium; the report's browser test will skip", flush=True)


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if what == "demo":
        setup("dev")
        sh(os.path.join(BIN, "hearth"), "demo", *rest)
    elif what == "test":
        setup("dev,bench")
        sh(PY, "-m", "ruff", "check", ".")
        # mypy sees the package as ``hearth`` through a link (the checkout's own name varies)
        link = os.path.join(VENV, "src-link")
        os.makedirs(link, exist_ok=True)
        if not os.path.islink(os.path.join(link, "hearth")):
            os.symlink(ROOT, os.path.join(link, "hearth"))
        print("+ mypy hearth", flush=True)
        subprocess.run([PY, "-m", "mypy", "--config-file", os.path.join(ROOT, "pyproject.toml"),
                        "-p", "hearth.model", "-p", "hearth.io", "-p", "hearth.batch",
                        "-p", "hearth.cluster", "-m", "hearth.errors"], cwd=link, check=True)
        ensure_chromium()
        sh(os.path.join(BIN, "pytest"), *rest)
    elif what == "bench":
        setup("dev,bench")
        sh(PY, os.path.join("bench", "throughput.py"), *rest)
    else:
        print(__doc__)


if __name__ == "__main__":
    main()
