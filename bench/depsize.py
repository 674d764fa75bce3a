"""Installed size of a set of distributions and everything they require, in the running venv.

    python -m bench.depsize 'bert2vec[function]' --exclude bert2vec
    python -m bench.depsize onnxruntime tokenizers

Walks ``importlib.metadata`` requirements (markers evaluated for this interpreter, extras only
where asked for) and sums the on-disk size of every file each distribution's RECORD lists.
Prints JSON: ``{"total_mb": ..., "packages": {name: mb}}``. Standard library + pip only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from importlib import metadata

try:
    from packaging.markers import Marker
    from packaging.requirements import Requirement
except ImportError:  # every venv has pip, which vendors packaging
    from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _marker_ok(marker: Marker | None, extras: set[str]) -> bool:
    if marker is None:
        return True
    if not extras:
        return marker.evaluate({"extra": ""})
    return any(marker.evaluate({"extra": e}) for e in extras)


def closure(roots: list[str]) -> dict[str, metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        key = _norm(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        first = key not in seen
        seen[key] = dist
        if not first and not req.extras:
            continue
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if _marker_ok(sub.marker, set(req.extras)):
                if sub.marker is not None and "extra" in str(sub.marker) and not req.extras:
                    continue
                if _norm(sub.name) not in seen or sub.extras:
                    todo.append(sub)
    return seen


def dist_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        try:
            total += f.locate().stat().st_size  # type: ignore[union-attr]
        except OSError:
            pass
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("roots", nargs="+")
    p.add_argument("--exclude", nargs="*", default=[])
    args = p.parse_args(argv)
    dists = closure(args.roots)
    excluded = {_norm(e) for e in args.exclude}
    sizes = {name: dist_bytes(d) / 1e6 for name, d in sorted(dists.items()) if name not in excluded}
    print(json.dumps({"total_mb": sum(sizes.values()), "packages": sizes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
