"""`sam build` then `sam local invoke EncodeFunction -e events/<file>` for every encode event.

Each answer is checked against ``events/expectations.json`` (status, keys, vector count, error type)
by :func:`tests.sam.samlocal.answer`, which fails on an empty answer, a connection time-out or an
unhandled error. One test builds a copy of the template whose handler does not exist and shows that
the same check fails on it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import EVENTS
from tests.e2e.lambda_checks import EXPECTATIONS
from tests.image.container import docker
from tests.sam.samlocal import SamLocalFailure, answer, check_expected, invoke


def test_sam_build_reuses_the_image_make_image_built(sam_build, built_template: Path, made_image_id: str) -> None:
    """The three functions share one image, and it is the one `make image` built (all cache hits)."""
    uris = re.findall(r"^\s+ImageUri: (\S+)$", built_template.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert len(uris) == 3 and len(set(uris)) == 1, uris
    built = docker("image", "inspect", "--format", "{{.Id}}", uris[0]).stdout.strip()
    assert built == made_image_id, (built, made_image_id, sam_build.stdout[-2000:])


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_sam_local_invoke_answers_every_encode_event(built_template: Path, name: str) -> None:
    run = invoke("EncodeFunction", EVENTS / name, template=built_template)
    check_expected(answer(run), EXPECTATIONS[name])


def test_a_broken_handler_fails_the_check(built_template: Path, tmp_path: Path) -> None:
    """The same invoke and check on a template whose encode handler names a function that does not
    exist: sam local prints the runtime's error object, and the check refuses it."""
    text = built_template.read_text(encoding="utf-8")
    assert text.count("- function.app.handler") == 1, "the built template's encode Command moved"
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace("- function.app.handler", "- function.app.no_such_handler"), encoding="utf-8")
    run = invoke("EncodeFunction", EVENTS / "direct_encode.json", template=broken)
    with pytest.raises(SamLocalFailure, match="no_such_handler|HandlerNotFound|exited"):
        answer(run)
    # and the real handler through the same path passes (the check is not failing everything)
    check_expected(answer(invoke("EncodeFunction", EVENTS / "direct_encode.json", template=built_template)),
                   EXPECTATIONS["direct_encode.json"])  # fmt: skip
