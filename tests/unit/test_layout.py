"""The layout's promises, checked on the source (no imports of the code under test needed).

- The serving code is five named layers, each a package: ``core`` (contract, errors, settings,
  encoder, long-text policy, start-up) <- ``files`` (readers, writers, pipeline, manifest) and,
  beside it, ``aws`` (the one client factory and error classifier) <- ``http`` and ``bulk``;
  ``files`` and ``aws`` never import each other, nor do ``http`` and ``bulk``. Above them sit ``cli`` and
  the pip user's modules (``api``, ``backfill``...). ``export`` (build time) uses only the shared
  SavedModel contract. One AST pass over every import (module level and inside functions) holds
  the rule, and a planted wrong-way arrow shows the check failing.
- The serving layers are exactly what the Lambda image runs: they never import the export tooling,
  the CLI, the examples or dev-only libraries. ``function/`` holds only the image's entry points,
  each re-exporting handlers from ``bert2vec.http.app`` / ``bert2vec.bulk.app``.
- The Dockerfile's runtime stage copies the five layers, ``bert2vec/__init__.py`` and
  ``function/``, and nothing else of ``bert2vec/``.
- The wheel installs one top-level package, ``bert2vec`` (tests/wheel checks the built wheel).
- Every error type has exactly one HTTP status, in the edge's table.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "bert2vec"
SERVING = ("core", "aws", "files", "http", "bulk")  # what the image ships, lowest layer first
ENTRY_POINTS = REPO / "function"
FORBIDDEN_IN_IMAGE = ("examples", "tests", "moto", "tqdm", "argparse")
# Which layers each may import (itself included). cli and the pip user's top-level modules may use
# every serving layer; export (build time) only the SavedModel contract and the quiet TF import.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "aws": frozenset({"core", "aws"}),
    "files": frozenset({"core", "files"}),
    "http": frozenset({"core", "aws", "files", "http"}),
    "bulk": frozenset({"core", "aws", "files", "bulk"}),
    "cli": frozenset({"core", "aws", "files", "http", "bulk", "cli", "top", "export"}),
    "top": frozenset({"core", "aws", "files", "http", "bulk", "cli", "top", "export"}),
    "export": frozenset({"export", "core.contract", "core.tf_quiet", "top"}),
}


def _imports(path: Path) -> set[str]:
    """Every absolute import in the file, at module level or inside a function (a lazy import is
    still an arrow between layers)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "bert2vec":  # from bert2vec.core import contract -> bert2vec.core.contract
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def _layer(module: str) -> str:
    """``bert2vec.bulk.worker`` -> ``bulk``; the pip user's top-level modules are ``top``."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in (*SERVING, "cli", "export"):
        return parts[1]
    return "top"


def wrong_way_arrows(package: Path) -> list[str]:
    """``file: imported module`` for every import that crosses the layers against the rule."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        mine = _layer(module)
        for name in sorted(_imports(path)):
            if name != "bert2vec" and not name.startswith("bert2vec."):
                continue
            if name == "bert2vec" or name.count(".") == 1 and _layer(name) == "top" and mine != "export":
                continue  # the package root's own names (its version) are below everything
            target = _layer(name)
            allowed = MAY_IMPORT[mine]
            dotted = ".".join(name.split(".")[1:3])
            if target not in allowed and dotted not in allowed:
                found.append(f"{rel}.py: {name}")
    return found


def test_every_import_follows_the_layers() -> None:
    assert not wrong_way_arrows(PACKAGE)


def test_the_layer_check_fails_on_a_wrong_way_arrow(tmp_path: Path) -> None:
    """The check above can fail: a copy of the package with one planted arrow per forbidden kind."""
    import shutil

    copy = tmp_path / "bert2vec"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    planted = {
        "core/long_text.py": "from bert2vec.http.wire import echo\n",  # core -> http
        "files/pipeline.py": "def f():\n    from bert2vec.bulk.config import ConfigError\n",  # files -> bulk, lazily
        "http/search.py": "from bert2vec.bulk import vectors\n",  # http -> bulk
        "bulk/worker.py": "import bert2vec.http.service\n",  # bulk -> http
        "aws/factory.py": "from bert2vec.files import manifest\n",  # aws -> files (beside it, not below)
        "files/readers.py": "def f():\n    from bert2vec.aws.errors import error_code\n",  # files -> aws, lazily
        "export/builder.py": "from bert2vec.core import encoder\n",  # export -> more than the contract
    }
    for rel, line in planted.items():
        path = copy / rel
        path.write_text(path.read_text(encoding="utf-8") + "\n" + line, encoding="utf-8")
    arrows = wrong_way_arrows(copy)
    assert len(arrows) == len(planted), arrows
    assert {a.split(":")[0] for a in arrows} == {f"bert2vec/{rel}" for rel in planted}


def _outside_the_image(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "bert2vec":  # only the serving layers (and the bare package, whose __init__ imports nothing)
        return len(parts) > 1 and parts[1] not in SERVING
    return parts[0] in FORBIDDEN_IN_IMAGE or parts[0] in ("function", "export")


def test_the_serving_layers_import_nothing_the_image_does_not_ship() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for layer in SERVING
        for path in (PACKAGE / layer).rglob("*.py")
        for name in _imports(path)
        if _outside_the_image(name)
    }
    assert not offenders, sorted(offenders)


def test_function_holds_only_entry_points_into_the_serving_layers() -> None:
    for path in ENTRY_POINTS.glob("*.py"):
        used = _imports(path)
        assert all(n.rpartition(".")[0] in ("bert2vec.http.app", "bert2vec.bulk.app") for n in used), f"{path.relative_to(REPO)} imports {used}"
    assert not [p for p in ENTRY_POINTS.iterdir() if p.is_dir() and p.name != "__pycache__"]


def test_the_serving_layers_hold_no_cli_or_demo_modules() -> None:
    names = {p.stem for layer in SERVING for p in (PACKAGE / layer).rglob("*.py")}
    assert not {n for n in names if "cli" in n or "demo" in n or n in ("local_invoke", "__main__")}


def _runtime_stage() -> list[str]:
    text = (ENTRY_POINTS / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def test_runtime_stage_copies_the_serving_layers_only() -> None:
    copies = [line for line in _runtime_stage() if line.upper().startswith("COPY ")]
    sources = [word for line in copies if "--from=" not in line for word in line.split()[1:-1]]
    allowed = {"function/", "bert2vec/__init__.py", *(f"bert2vec/{layer}/" for layer in SERVING)}
    assert allowed <= set(sources)
    assert not [s for s in sources if s not in allowed and s.rstrip("/").split("/")[0] in ("export", "bert2vec", "examples", "tests", ".")]


def test_every_error_type_has_one_http_status() -> None:
    from bert2vec.core import errors
    from bert2vec.http.statuses import HTTP_STATUS

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.Bert2VecError)]
    types = [c.error_type for c in classes]
    assert len(types) == len(set(types)), "two error classes share an error_type"
    assert set(classes) == set(HTTP_STATUS), "HTTP_STATUS and the error classes disagree"
    assert not [c for c in classes if "status" in vars(c)], "statuses belong in statuses.HTTP_STATUS only"
    caller_faults = {c: s for c, s in HTTP_STATUS.items() if c.error_type not in ("model_not_found", "model_not_loaded", "search_unavailable")}
    assert all(400 <= s < 500 for s in caller_faults.values())


def test_the_encode_handler_imports_no_bulk_parquet_or_aws_sdk_code_at_init() -> None:
    """Init imports only what serving an encode request needs (the bulk path and pyarrow are lazy)."""
    import subprocess
    import sys

    code = (
        "import sys, bert2vec.http.app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'boto3', 'tensorflow') "
        "or m.startswith('bert2vec.bulk')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={"BERT2VEC_LAZY_INIT": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_version_is_written_once() -> None:
    import bert2vec

    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "bert2vec.__version__"' in pyproject
    assert bert2vec.__version__.count(".") == 2
