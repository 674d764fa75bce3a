"""What ships in the serving image: the locked packages, and no installer or index settings.

The ``deps`` stage installs ``function/requirements-<arch>.txt`` with ``--require-hashes``; here the
built image's venv is read back (importlib.metadata, no pip needed) and compared with that lock, and
the serving stage is checked for what a build host could leak into it: pip (in any Python of the
image), ensurepip's bundled wheels, pip.conf files, the build host's CA bundle, ``PIP_*`` variables.
"""

from __future__ import annotations

import json
import re

from tests.image.container import REPO, docker

TRIMMED = {"libclang", "grpcio", "h5py", "pygments", "setuptools", "google-pasta", "markdown-it-py", "mdurl",
           "namex", "wheel"}  # fmt: skip


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _run(image: str, script: str) -> str:
    return docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script, timeout=120).stdout


def test_the_venv_holds_exactly_the_lock_less_the_trim(image: str) -> None:
    arch = _run(image, "uname -m").strip()
    lock = {}
    for line in (REPO / "function" / f"requirements-{arch}.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.split()[0].partition("==")
            lock[_norm(name)] = version
    listed = _run(image, "python -c \"import importlib.metadata as m, json; "
                         "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))\"")  # fmt: skip
    installed = {_norm(k): v for k, v in json.loads(listed).items()}
    assert installed == {k: v for k, v in lock.items() if k not in TRIMMED}


def test_no_installer_and_no_index_settings_ship(image: str) -> None:
    probe = (
        "for py in /opt/venv/bin/python /usr/local/bin/python3 /usr/bin/python3; do [ -x $py ] && "
        "{ $py -m pip --version >/dev/null 2>&1 && echo PIP:$py; $py -m ensurepip --version >/dev/null 2>&1 && echo ENSUREPIP:$py; }; done; "
        "ls /usr/local/bin /usr/bin | grep -E '^pip' | sed 's/^/BIN:/'; "
        "ls /usr/share/python-wheels 2>/dev/null | sed 's/^/WHEEL:/'; "
        "for f in /etc/pip.conf /etc/xdg/pip/pip.conf /root/.config/pip/pip.conf /root/.pip/pip.conf /etc/ssl/build-host-ca.crt; do "
        "[ -e $f ] && echo FILE:$f; done; env | grep -E '^PIP_' | sed 's/^/ENV:/'; echo done"
    )  # fmt: skip
    assert _run(image, probe).split() == ["done"]
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config.Env}}", image).stdout)
    assert not [e for e in config if e.startswith("PIP_") or "index-url" in e.lower()], config
