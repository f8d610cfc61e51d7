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

``--fail-at STAGE`` simulates an API timeout in that stage (as seed 001's
scenario 1), and ``--intermediates DIR`` writes each stage's output as a
human-readable ``NN_stage.json`` file, as the old workflow did.
``--demo DIR`` runs the whole recovery story in a scratch directory.
"""

from __future__ import annotations

import json
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


def character_designer(script_segmenter: list[Segment]) -> ckpt.StageResult[list[str]]:
    step("character_designer")
    return ckpt.StageResult([f"scene_{i}.png" for i in range(len(script_segmenter))], cost=2.4)


def video_assembler(
    script_segmenter: list[Segment], character_designer: list[str]
) -> dict[str, object]:
    step("video_assembler")
    seconds = sum(s.seconds for s in script_segmenter)
    return {"file": "final.mp4", "seconds": seconds, "images": len(character_designer)}


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
@ckpt.click_options(pipeline)
def main(
    story_file: str | None,
    fail_at: str | None,
    intermediates: str | None,
    demo: str | None,
    runner: ckpt.Runner,
) -> None:
    """Make a moral video from a story, checkpointing after each step."""
    if demo is not None:
        run_demo(Path(demo))
        return
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

    def cli(*args: str, code: int = 0) -> str:
        command = [sys.executable, __file__, "--store", store, *args]
        click.echo(f"$ video_workflow.py {' '.join(args)}")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        click.echo(done.stdout, nl=False)
        if done.stderr.strip():
            click.echo(done.stderr.strip().splitlines()[-1])
        if done.returncode != code:
            raise click.ClickException(f"exit code {done.returncode}, expected {code}")
        return done.stdout

    cli("--input", str(story), "--workflow-id", "abc123", "--fail-at", "story_generator", code=1)
    cli("--workflow-id", "abc123", "--list-checkpoints")
    out = cli("--workflow-id", "abc123", "--resume", "--intermediates", str(directory / "out"))
    assert "running context_analyzer" not in out
    out = cli("--workflow-id", "abc123", "--resume-from-step", "video_assembler")
    assert out.count("running") == 1
    cli("--input", str(story), "--no-checkpoint")
    cli("--workflow-id", "fresh", code=1)  # a new job needs its input
    click.echo(f"intermediates: {sorted(p.name for p in (directory / 'out').iterdir())}")


if __name__ == "__main__":
    if len(sys.argv) == 1:
        with tempfile.TemporaryDirectory() as scratch:
            click.echo("No arguments: playing the recovery story in a scratch directory.\n")
            run_demo(Path(scratch) / "demo")
    else:
        main()
