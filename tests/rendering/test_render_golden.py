"""Golden files: the sample tenants render to the checked-in outputs under golden/<sample>/.

Regenerate after an intended template change with:  UPDATE_GOLDEN=1 python3 -m pytest tests/rendering/test_render_golden.py
then review the diff (git diff tests/rendering/golden) before committing.
"""

import os
from pathlib import Path

import pytest

from ccp.rendering.render import render_instance
from tests.rendering.conftest import write_tree

GOLDEN = Path(__file__).parent / "golden"


def _on_disk(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("sample", ["provisioned", "registered"])
def test_sample_renders_to_golden(sample, request):
    instance, secrets = request.getfixturevalue(sample)
    files = render_instance(instance, secrets=secrets).files
    folder = GOLDEN / sample
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for old in folder.rglob("*"):
            if old.is_file():
                old.unlink()
        write_tree(folder, files)
    expected = _on_disk(folder)
    assert sorted(files) == sorted(expected)
    for rel in files:
        assert files[rel] == expected[rel], f"{rel} differs from golden; UPDATE_GOLDEN=1 to accept"


def test_registered_golden_has_no_env():
    assert not (GOLDEN / "registered" / ".env").exists()
    assert (GOLDEN / "provisioned" / ".env").exists()
