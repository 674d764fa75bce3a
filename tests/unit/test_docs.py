"""The documentation stays short, linked and true to the tree (fast tier: stdlib only, no TensorFlow).

- README.md is at most 150 lines and opens with ``make run`` and ``make test``;
- every relative link in README.md, docs/*.md, bench/README.md and events/README.md points at a
  file that exists, and every ``#anchor`` into a markdown file at one of its headings (GitHub's
  slug rules);
- the README's layout table names only top-level paths that exist, and every top-level folder;
- the configuration tables have the shape other tests parse;
- no file in the repository refers to the retired design guide or to this project's issue numbers.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
README_MAX_LINES = 150

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# Assembled so that this file does not match its own check.
FORBIDDEN = re.compile("GUIDE" + r"\.md" + "|" + "[Ii]ssue" + r" #[0-9]")
CONFIG_HEADER = "| Variable | Default | Meaning |"


def doc_files() -> list[Path]:
    files = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md", REPO / "events" / "README.md"]
    return [f for f in files if f.is_file()]


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) <= {fence[0]}:
                fence = None
            continue
        yield number, line


def inline_text(heading: str) -> str:
    """The text GitHub renders for a heading: links and images reduced to their text, code spans
    to their content, HTML tags and emphasis markers dropped."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("*", "")


def github_slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation removed (``-`` and ``_`` kept), each space a ``-``."""
    text = inline_text(heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    result: set[str] = set(HTML_ANCHOR.findall(text))
    previous = ""
    for _, line in prose_lines(text):
        heading = None
        m = ATX_HEADING.match(line)
        if m:
            heading = m.group(2)
        elif (
            SETEXT_UNDERLINE.match(line) and previous.strip() and not previous.lstrip().startswith(("|", "-", "*", ">"))
        ):
            heading = previous.strip()
        if heading is not None:
            slug = github_slug(heading)
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            result.add(slug if n == 0 else f"{slug}-{n}")
        previous = line
    return result


def links(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition outside code."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        line = CODE_SPAN.sub("code", line)
        for m in INLINE_LINK.finditer(line):
            yield number, m.group(1)
        m = REFERENCE_DEF.match(line)
        if m:
            yield number, m.group(1)


def repository_files() -> list[Path]:
    """Files git tracks, plus new files it would track (not ignored), that exist on disk."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    names = sorted({n for n in out.decode("utf-8", "surrogateescape").split("\0") if n})
    return [REPO / n for n in names if (REPO / n).is_file()]


def layout_paths() -> list[str]:
    """Backticked paths in the first column of the README's "Layout" table."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Layout\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README.md has no '## Layout' section"
    rows = [line for line in section.group(1).splitlines() if line.lstrip().startswith("|")]
    paths = []
    for row in rows[2:]:  # header and separator
        first = row.strip().strip("|").split("|")[0]
        paths += re.findall(r"`([^`]+)`", first)
    return paths


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; keep it to {README_MAX_LINES}"


def test_readme_opens_with_the_two_commands():
    head = "\n".join(README.read_text(encoding="utf-8").splitlines()[:10])
    for command in ("make run", "make test"):
        assert command in head, f"README.md must show `{command}` in its first 10 lines"


def test_doc_files_found():
    names = {rel(f) for f in doc_files()}
    assert {"README.md", "bench/README.md", "events/README.md"} <= names
    assert any(n.startswith("docs/") for n in names)


@pytest.mark.parametrize("doc", doc_files(), ids=rel)
def test_relative_links_resolve(doc: Path):
    problems = []
    for number, target in links(doc):
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue
        path_part, _, fragment = target.partition("#")
        dest = (doc.parent / unquote(path_part)).resolve() if path_part else doc
        where = f"{rel(doc)}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where} -> no such file")
            continue
        if fragment and dest.is_file() and dest.suffix.lower() == ".md":
            if unquote(fragment).lower() not in anchors(dest):
                problems.append(f"{where} -> no heading with anchor #{fragment} in {dest.relative_to(REPO)}")
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_no_references_to_the_design_guide_or_issue_numbers():
    hits = []
    for path in repository_files():
        data = path.read_bytes().decode("utf-8", "replace")
        for number, line in enumerate(data.splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{rel(path)}:{number}: {line.strip()[:120]}")
    assert not hits, "refer to docs/ (or say it in place) instead:\n" + "\n".join(hits)


def test_layout_table_names_only_existing_top_level_paths():
    paths = layout_paths()
    assert len(paths) >= 8, f"the layout table looks empty: {paths}"
    missing = [p for p in paths if not (REPO / p.rstrip("/")).exists()]
    assert not missing, f"README.md's layout table names paths that do not exist: {missing}"
    nested = [p for p in paths if "/" in p.rstrip("/") and not (REPO / p.split("/")[0]).is_dir()]
    assert not nested, f"not under a top-level folder: {nested}"


def test_layout_table_names_every_top_level_folder():
    named = {p.split("/")[0] for p in layout_paths()}
    folders = {path.relative_to(REPO).parts[0] for path in repository_files() if len(path.relative_to(REPO).parts) > 1}
    unnamed = sorted(f for f in folders if not f.startswith(".") and f not in named)
    assert not unnamed, f"README.md's layout table does not mention: {unnamed}"


@pytest.mark.parametrize("page", ["docs/http-api.md", "docs/s3-bulk.md"])
def test_configuration_table_shape(page: str):
    lines = (REPO / page).read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == CONFIG_HEADER]
    assert len(starts) == 1, f"{page}: expected exactly one '{CONFIG_HEADER}' table, found {len(starts)}"
    rows = []
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert rows, f"{page}: the configuration table has no rows"
    names = []
    for cells in rows:
        assert re.fullmatch(r"`[A-Z][A-Z0-9_]*`", cells[0]), f"{page}: variable cell {cells[0]!r}"
        assert re.fullmatch(r"`[^`]*`", cells[1]), f"{page}: default cell {cells[1]!r} of {cells[0]}"
        assert not re.fullmatch(r"`\d{1,3}(,\d{3})+`|`\d+_\d+`", cells[1]), (
            f"{page}: write {cells[1]} as a plain integer"
        )
        names.append(cells[0])
    assert len(names) == len(set(names)), f"{page}: a variable appears twice"


def test_slug_rules():
    assert github_slug("The encode function through the real awslambdaric process (`bench/function_latency.py`)") == (
        "the-encode-function-through-the-real-awslambdaric-process-benchfunction_latencypy"
    )
    assert github_slug("Exporting a model: `bert-export`") == "exporting-a-model-bert-export"
    assert github_slug("Object keys: URL-encoded in S3 notifications, not in EventBridge") == (
        "object-keys-url-encoded-in-s3-notifications-not-in-eventbridge"
    )
    assert github_slug("Use it from…") == "use-it-from"
