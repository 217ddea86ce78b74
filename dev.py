#!/usr/bin/env python3
"""Set up and run hearth with nothing but Python 3.11+.

    python3 dev.py demo     # create .venv, install hearth, run the 1,000-household demo
    python3 dev.py test     # create .venv, install hearth with dev tools, lint, type-check, test
    python3 dev.py bench    # the throughput benchmark (extra arguments are passed on)

Uses only the standard library, so it runs before anything is installed.
"""

from __future__ import annotations

import os
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
    if not os.path.exists(PY):
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = os.path.join(VENV, f".installed-{extras}")
    pyproject = os.path.join(ROOT, "pyproject.toml")
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(pyproject):
        sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        sh(PY, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]")
        with open(stamp, "w") as f:
            f.write("ok\n")


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
        sh(os.path.join(BIN, "pytest"), *rest)
    elif what == "bench":
        setup("dev,bench")
        sh(PY, os.path.join("bench", "throughput.py"), *rest)
    else:
        print(__doc__)


if __name__ == "__main__":
    main()
