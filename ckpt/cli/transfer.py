"""Moving jobs between stores as JSON files: ``export`` and ``import``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile

import click

from ckpt.cli import output as out
from ckpt.cli.complete import complete_jobs, complete_revisions
from ckpt.cli.context import get_job, open_repo
from ckpt.cli.currentjob import JobCommand


def _write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old file or the new one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-export-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@click.command("export", cls=JobCommand)
@click.argument("job", shell_complete=complete_jobs)
@click.argument("rev", required=False, shell_complete=complete_revisions)
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Where to write the export (- for stdout).",
)
def export(job: str, rev: str | None, output_path: str) -> None:
    """Write JOB (branches, tags, every checkpoint) as a JSON file.

    With REV, only that one checkpoint is exported; importing it starts a
    job whose history begins there.  Values are written as plain JSON, so
    the file is readable and diffable.
    """
    from ckpt.transfer.exchange import export_job

    the_job = get_job(job)
    doc = export_job(the_job, rev)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output_path == "-":
        click.echo(text, nl=False)
        return
    _write_atomically(output_path, text)
    commits = len(doc["commits"])
    what = (
        f"checkpoint {doc['commits'][0]['id'][:12]}"
        if rev is not None
        else f"{commits} checkpoints"
    )
    out.echo(f"Exported {the_job.name} ({what}) to {output_path}.")


@click.command("import")
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--as", "name", metavar="NAME", help="Import under this job name instead.")
def import_(file: str, name: str | None) -> None:
    """Create a job from an export FILE (- for stdin).  Refuses to replace an existing job."""
    from ckpt.errors import CkptError
    from ckpt.transfer.exchange import import_job

    try:
        if file == "-":
            text = sys.stdin.read()
        else:
            with open(file, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise CkptError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CkptError(f"{file} is not a ckpt export: not valid JSON ({exc})") from None
    job = import_job(open_repo(), doc, name=name)
    count = len(doc.get("commits", [])) if isinstance(doc, dict) else 0
    out.echo(f"Imported job {job.name} ({count} checkpoints) from {file}.")
