"""A video workflow (seed 001) with ckpt's drop-in command-line flags.

``@ckpt.click_options(pipeline)`` gives this command ``--job-id``,
``--resume``, ``--resume-from STAGE``, ``--at REV``, ``--branch NAME``,
``--restart``, ``--list-checkpoints``, ``--no-checkpoint``, ``--store``
and ``--wait``, and accepts the names seed 001's users type:
``--workflow-id``, ``--resume-from-step`` and ``--checkpoint-path``.
Try::

    python examples/video_workflow.py --input story.json --workflow-id my-video-001
    python examples/video_workflow.py --workflow-id my-video-001 --resume
    python examples/video_workflow.py --workflow-id my-video-001 --resume-from-step video_assembler
    python examples/video_workflow.py --workflow-id my-video-001 --list-checkpoints
    python examples/video_workflow.py --input story.json --no-checkpoint

Run with no arguments, it plays the recovery story below in a scratch
directory.  A run that starts a job without ``--input`` is refused with
"no input given".

The character designer draws one image per scene into ``--work DIR`` and
returns them as a ``ckpt.Directory``; the assembler renders ``final.mp4``
from them and returns it as a ``ckpt.File``.  Both are stored in the
checkpoint (streamed, chunked, deduplicated), so a resumed run hands the
assembler the scene images even when the work directory is gone, and
``ckpt cat JOB HEAD video_assembler --to DIR`` writes the video back out.

``--fail-at STAGE`` simulates an API timeout in that stage (as seed 001's
scenario 1), and ``--intermediates DIR`` writes each stage's output as a
human-readable ``NN_stage.json`` file, as the old workflow did.
``--demo DIR`` runs the whole recovery story in a scratch directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import click

import ckpt
from ckpt.values import serialize


@attrs.frozen
class Story:
    title: str
    moral: str


@attrs.frozen
class Segment:
    text: str
    seconds: float


FAIL_AT: set[str] = set()
#: Where the stages write their images and video (``--work``).
WORK = [Path("video-work")]


def step(name: str) -> None:
    click.echo(f"  running {name}")
    if name in FAIL_AT:
        raise TimeoutError(f"API timeout in {name}")


def context_analyzer(input: Story) -> dict[str, str]:
    step("context_analyzer")
    return {"theme": input.moral, "audience": "children"}


def web_researcher(context_analyzer: dict[str, str]) -> list[str]:
    step("web_researcher")
    return [f"fable about {context_analyzer['theme']}", "animation styles"]


def story_generator(input: Story, web_researcher: list[str]) -> ckpt.StageResult[str]:
    step("story_generator")
    text = f"{input.title}. Once upon a time... ({len(web_researcher)} sources)"
    return ckpt.StageResult(text, cost=0.8, tokens=2400)


def script_segmenter(story_generator: str) -> list[Segment]:
    step("script_segmenter")
    return [Segment(part.strip(), 4.5) for part in story_generator.split(".") if part.strip()]


def character_designer(script_segmenter: list[Segment]) -> ckpt.StageResult[ckpt.Directory]:
    step("character_designer")
    scenes = WORK[0] / "scenes"
    shutil.rmtree(scenes, ignore_errors=True)
    scenes.mkdir(parents=True)
    for number, segment in enumerate(script_segmenter):
        (scenes / f"scene_{number:02d}.png").write_bytes(draw(segment.text))
    return ckpt.StageResult(ckpt.Directory(scenes), cost=2.4)


def draw(text: str) -> bytes:
    """A stand-in for an image model: 64 KiB of picture-like bytes for a scene."""
    seed = hashlib.sha256(text.encode()).digest()
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        hashlib.sha256(seed + n.to_bytes(4, "big")).digest() for n in range(2048)
    )


def video_assembler(
    script_segmenter: list[Segment], character_designer: ckpt.Directory
) -> dict[str, object]:
    step("video_assembler")
    # A loaded Directory is a path too: the images are written out of the store on first use.
    frames = sorted(Path(character_designer).iterdir())
    video = WORK[0] / "final.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    with open(video, "wb") as out:
        for frame, segment in zip(frames, script_segmenter, strict=True):
            out.write(frame.read_bytes() * max(1, round(segment.seconds)))
    seconds = sum(s.seconds for s in script_segmenter)
    return {"video": ckpt.File(video), "seconds": seconds, "images": len(frames)}


pipeline = ckpt.Pipeline(
    [
        context_analyzer,
        web_researcher,
        story_generator,
        script_segmenter,
        character_designer,
        video_assembler,
    ],
    keep_last=10,  # seed 001's checkpoint_retention_count
)


def write_intermediates(job: ckpt.Job, directory: Path) -> None:
    """Each stage's output as a readable JSON file, numbered in pipeline order."""
    directory.mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(job.stages(), 0):
        value = serialize.parse_json(job.load_raw(name))
        path = directory / f"{number:02d}_{name}.json"
        path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


@click.command()
@click.option("--input", "story_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--fail-at", type=click.Choice(pipeline.stage_names), help="Simulate a timeout.")
@click.option("--intermediates", type=click.Path(file_okay=False), help="Write NN_stage.json.")
@click.option("--demo", type=click.Path(file_okay=False), help="Run the recovery story here.")
@click.option(
    "--work",
    type=click.Path(file_okay=False),
    default="video-work",
    show_default=True,
    help="Where images and the video are drawn.",
)
@ckpt.click_options(pipeline)
def main(
    story_file: str | None,
    fail_at: str | None,
    intermediates: str | None,
    demo: str | None,
    work: str,
    runner: ckpt.Runner,
) -> None:
    """Make a moral video from a story, checkpointing after each step."""
    if demo is not None:
        run_demo(Path(demo))
        return
    WORK[0] = Path(work)
    if fail_at:
        FAIL_AT.add(fail_at)
    story = None
    if story_file is not None:
        story = serialize.structure(json.loads(Path(story_file).read_text()), Story)
    result = runner.run(story)
    click.echo(f"done: ran {', '.join(result.ran) or 'nothing'}; output {result.output}")
    if intermediates and not runner.no_checkpoint:
        write_intermediates(runner.repository().job(runner.job_id), Path(intermediates))


def run_demo(directory: Path) -> None:
    """The recovery scenarios of seed 001, each as a real run of this command."""
    directory.mkdir(parents=True, exist_ok=True)
    story = directory / "story.json"
    story.write_text(json.dumps({"title": "The Honest Fox", "moral": "honesty"}))
    store = str(directory / "checkpoints")
    work = directory / "work"

    def run(command: list[str], shown: str, code: int) -> str:
        click.echo(f"$ {shown}")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        click.echo(done.stdout, nl=False)
        if done.stderr.strip():
            click.echo(done.stderr.strip().splitlines()[-1])
        if done.returncode != code:
            raise click.ClickException(f"exit code {done.returncode}, expected {code}")
        return done.stdout

    def cli(*args: str, code: int = 0) -> str:
        command = [sys.executable, __file__, "--store", store, "--work", str(work), *args]
        return run(command, f"video_workflow.py {' '.join(args)}", code)

    def ckpt_cli(*args: str) -> str:
        command = [sys.executable, "-m", "ckpt", "--store", store, *args]
        return run(command, f"ckpt {' '.join(args)}", 0)

    cli("--input", str(story), "--workflow-id", "abc123", "--fail-at", "story_generator", code=1)
    cli("--workflow-id", "abc123", "--list-checkpoints")
    out = cli("--workflow-id", "abc123", "--resume", "--intermediates", str(directory / "out"))
    assert "running context_analyzer" not in out
    # The scene images come back from the checkpoint, not from the work directory.
    shutil.rmtree(work)
    out = cli("--workflow-id", "abc123", "--resume-from-step", "video_assembler")
    assert out.count("running") == 1
    ckpt_cli("show", "abc123")
    ckpt_cli("cat", "abc123", "HEAD", "video_assembler", "--to", str(directory / "video"))
    rendered = directory / "video" / "final.mp4"
    assert rendered.read_bytes() == (work / "final.mp4").read_bytes()
    cli("--input", str(story), "--no-checkpoint")
    click.echo(f"intermediates: {sorted(p.name for p in (directory / 'out').iterdir())}")
    cli("--workflow-id", "fresh", code=1)  # a new job needs its input


if __name__ == "__main__":
    if len(sys.argv) == 1:
        with tempfile.TemporaryDirectory() as scratch:
            click.echo("No arguments: playing the recovery story in a scratch directory.\n")
            run_demo(Path(scratch) / "demo")
    else:
        main()
