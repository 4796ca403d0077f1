"""`ccp render SLUG [--tag T] (--out DIR | --compare DIR)`: render a tenant's set to a folder or compare with one.

Exit status: 0 success / identical, 1 files differ (only with --compare), 2 bad input or a render error. Nothing is
written unless the whole set rendered. File contents are never printed (``.env`` holds secrets), only paths.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ccp.rendering.instance_file import load_instance_file
from ccp.rendering.render import RenderError, RenderResult, render_instance
from ccp.rendering.sets import TemplateSetError


class RenderFailed(click.ClickException):
    """Bad input or a template problem: exit 2, so exit 1 keeps meaning "files differ"."""

    exit_code = 2


def _settings():
    settings = current_app.config.get("CCP")
    extra = getattr(settings, "template_sets_dir", None) or os.environ.get("CCP_TEMPLATE_SETS_DIR")
    return ([extra] if extra else []), getattr(settings, "default_image_tag", None) or "latest"


def _instance_from_db(slug: str):
    from sqlalchemy import select

    from ccp.extensions import db
    from ccp.models import Instance

    instance = db.session.execute(select(Instance).filter_by(slug=slug)).scalar_one_or_none()
    if instance is None:
        raise RenderFailed(f"no instance with slug {slug!r}")
    return instance, (None if instance.is_registered else instance.decrypted_secrets())


def write_files(out: Path, files: dict[str, str]) -> None:
    """Write every file under ``out`` atomically (temp file + rename); .env gets mode 0600, scripts 0755."""
    for rel, content in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(content)
            os.chmod(tmp, 0o600 if target.name == ".env" else 0o755 if rel.endswith(".sh") else 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def compare_files(folder: Path, files: dict[str, str]) -> list[tuple[str, str]]:
    """Return (relpath, "modified" | "missing") for rendered files whose bytes differ from those under ``folder``.

    Files present in ``folder`` but not in the set are ignored (a tenant dir holds much more than the set).
    """
    differences = []
    for rel, content in files.items():
        path = folder / rel
        if not path.is_file():
            differences.append((rel, "missing"))
        elif path.read_bytes() != content.encode("utf-8"):
            differences.append((rel, "modified"))
    return differences


@click.command("render")
@click.argument("slug", required=False)
@click.option("--tag", help="Image tag to render for (default: the instance's tag, else CCP_DEFAULT_IMAGE_TAG).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Write the rendered set here.")
@click.option("--compare", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Compare byte by byte with this folder; exit 1 listing differing files.")
@click.option("--instance-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Describe the tenant in a TOML file instead of looking SLUG up in the database.")
@with_appcontext
def render_command(slug, tag, out, compare, instance_file):
    """Render a tenant's template set to a scratch folder (--out) or compare it with its files (--compare)."""
    if bool(slug) == bool(instance_file):
        raise click.UsageError("give either SLUG or --instance-file")
    if not out and not compare:
        raise click.UsageError("give --out DIR and/or --compare DIR")
    extra_dirs, default_tag = _settings()
    try:
        instance, secrets = load_instance_file(instance_file) if instance_file else _instance_from_db(slug)
        result: RenderResult = render_instance(instance, tag, secrets=secrets, extra_dirs=extra_dirs,
                                               default_tag=default_tag)
    except (RenderError, TemplateSetError, ValueError) as exc:
        raise RenderFailed(str(exc)) from None
    summary = f"{instance.slug}: set {result.set_name} {result.set_version}, tag {result.image_tag}"
    if out:
        write_files(out, result.files)
        click.echo(f"{summary}: wrote {len(result.files)} files to {out}")
    if compare:
        differences = compare_files(compare, result.files)
        for rel, status in differences:
            click.echo(f"{status:8} {rel}")
        if differences:
            click.echo(f"{summary}: {len(differences)} of {len(result.files)} files differ from {compare}")
            raise SystemExit(1)
        click.echo(f"{summary}: all {len(result.files)} files identical to {compare}")
