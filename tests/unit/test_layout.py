"""The layout's promises, checked on the source (no imports of the code under test needed).

- ``bert2vec/function/`` is exactly what the Lambda image runs: it never imports the export tooling,
  the rest of the pip user's package, the examples or dev-only libraries, and it holds no CLI or demo
  code. ``function/`` holds only the image's entry points, each re-exporting handlers from it.
- The Dockerfile's runtime stage copies ``bert2vec/function/``, ``bert2vec/__init__.py`` and
  ``function/``, and nothing else of ``bert2vec/``.
- The wheel installs one top-level package, ``bert2vec`` (tests/wheel checks the built wheel).
- Every error type has exactly one HTTP status, in the edge's table.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FUNCTION = REPO / "bert2vec" / "function"
ENTRY_POINTS = REPO / "function"
FORBIDDEN_IN_IMAGE = ("examples", "tests", "moto", "tqdm", "argparse")


def _outside_the_image(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "bert2vec":  # only bert2vec.function (and the bare package, whose __init__ imports nothing)
        return len(parts) > 1 and parts[1] != "function"
    return parts[0] in FORBIDDEN_IN_IMAGE or parts[0] in ("function", "export")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_function_imports_nothing_the_image_does_not_ship() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in FUNCTION.rglob("*.py")
        for name in _imports(path)
        if _outside_the_image(name)
    }
    assert not offenders, sorted(offenders)


def test_function_holds_only_entry_points_into_bert2vec_function() -> None:
    for path in ENTRY_POINTS.glob("*.py"):
        used = _imports(path)
        assert all(n.startswith("bert2vec.function.") for n in used), f"{path.relative_to(REPO)} imports {used}"
    assert not [p for p in ENTRY_POINTS.iterdir() if p.is_dir() and p.name != "__pycache__"]


def test_export_and_the_package_sit_on_top_of_function_not_the_reverse() -> None:
    # bert2vec/export/ may use the shared contract (and the quiet TensorFlow import) only; bert2vec/ may use
    # anything in function/.
    for path in (REPO / "bert2vec" / "export").rglob("*.py"):
        used = {n for n in _imports(path) if n.startswith("bert2vec.") and not n.startswith("bert2vec.export")}
        assert used <= {"bert2vec.function.contract", "bert2vec.function.tf_quiet", "bert2vec.function"}, f"{path.relative_to(REPO)} imports {used}"


def test_function_holds_no_cli_or_demo_modules() -> None:
    names = {p.stem for p in FUNCTION.rglob("*.py")}
    assert not {n for n in names if "cli" in n or "demo" in n or n in ("local_invoke", "__main__")}


def _runtime_stage() -> list[str]:
    text = (ENTRY_POINTS / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def test_runtime_stage_copies_function_only() -> None:
    copies = [line for line in _runtime_stage() if line.upper().startswith("COPY ")]
    sources = [word for line in copies if "--from=" not in line for word in line.split()[1:-1]]
    assert {"function/", "bert2vec/function/", "bert2vec/__init__.py"} <= set(sources)
    allowed = {"function/", "bert2vec/function/", "bert2vec/__init__.py"}
    assert not [s for s in sources if s not in allowed and s.rstrip("/").split("/")[0] in ("export", "bert2vec", "examples", "tests", ".")]


def test_every_error_type_has_one_http_status() -> None:
    from bert2vec.function import errors
    from bert2vec.function.routes import HTTP_STATUS

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.Bert2VecError)]
    types = [c.error_type for c in classes]
    assert len(types) == len(set(types)), "two error classes share an error_type"
    assert set(types) == set(HTTP_STATUS), "HTTP_STATUS and the error classes disagree"
    assert not [c for c in classes if "status" in vars(c)], "statuses belong in routes.HTTP_STATUS only"
    caller_faults = {t: s for t, s in HTTP_STATUS.items() if t not in ("model_not_found", "model_not_loaded", "search_unavailable")}
    assert all(400 <= s < 500 for s in caller_faults.values())


def test_the_encode_handler_imports_no_bulk_parquet_or_aws_sdk_code_at_init() -> None:
    """Init imports only what serving an encode request needs (the bulk path and pyarrow are lazy)."""
    import subprocess
    import sys

    code = (
        "import sys, bert2vec.function.app; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'boto3', 'tensorflow') "
        "or m.startswith('bert2vec.function.bulk')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={"BERT2VEC_LAZY_INIT": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_version_is_written_once() -> None:
    from bert2vec import function
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "bert2vec.function.__version__"' in pyproject
    assert function.__version__.count(".") == 2
