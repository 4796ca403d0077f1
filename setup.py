"""Only here to ship the top-level templates/, static/ and migrations/ folders with a regular (non-editable) install.

They install under <prefix>/share/ccp/, where ccp._top_folder finds them. pyproject.toml holds everything else;
setuptools' declarative data-files cannot mirror a folder tree, hence these few lines.
"""

from pathlib import Path

from setuptools import setup


def _tree(top: str) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for path in sorted(Path(top).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            groups.setdefault(str(Path("share/ccp") / path.parent), []).append(str(path))
    return sorted(groups.items())


setup(data_files=_tree("templates") + _tree("static") + _tree("migrations"))
