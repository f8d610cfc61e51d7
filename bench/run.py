"""Run the benchmark suite: ``python -m bench`` (full) or ``python -m bench --quick``.

Prints a markdown table and, unless ``--no-write``, writes it with the
machine description and the verdict on every target to
``docs/benchmarks.md``.  Every figure is a ratio against a baseline measured
in the same run, as median and min-max over repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
import time
from typing import Any

from bench.common import Ratio, Section, fmt, human_seconds, machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "WF", "WB")
#: Sections in the document's order (a workload may make more than one section).
SECTION_ORDER = ("W1", "W1-langgraph", "W2", "W3", "W4", "W5", "W6", "W7", "WF", "WB")


def _quick_settings(quick: bool, tiny: bool) -> dict[str, Any]:
    if tiny:
        return dict(
            w1_steps=12,
            w1_repeats=1,
            w1_langgraph=(12, 1, None),
            w2_sizes=["1 KB", "100 KB"],
            w2_repeats=1,
            w3=(3, 30, 1, 2),
            w4=(2 << 20, 40, 1),
            w5_repeats=2,
            w6=(8 << 20, 1),
            w7=(4, 10, 1),
            wf=(8 << 20, 1),
        )
    if quick:
        return dict(
            w1_steps=200,
            w1_repeats=2,
            w1_langgraph=(200, 2, (20, 120)),
            w2_sizes=["1 KB", "100 KB", "1 MB", "10 MB"],
            w2_repeats=3,
            w3=(10, 1000, 3, 5),
            w4=(64 << 20, 3000, 2),
            w5_repeats=5,
            w6=(128 << 20, 1),
            w7=(20, 100, 3),
            wf=(256 << 20, 2),
        )
    return dict(
        w1_steps=1000,
        w1_repeats=3,
        w1_langgraph=(1000, 3, (20, 220)),
        w2_sizes=["1 KB", "100 KB", "1 MB", "10 MB", "100 MB"],
        w2_repeats=5,
        w3=(10, 10_000, 5, 9),
        w4=(2800 << 20, 40_000, 3),
        w5_repeats=15,
        w6=(1 << 30, 2),
        w7=(40, 200, 5),
        wf=(1 << 30, 3),
    )


def _w5(repeats: int) -> Section:
    section = Section("W5", "W5 start-up")
    try:
        from bench import startup
    except ImportError:
        startup = None
    if startup is not None and hasattr(startup, "rows"):
        for row in startup.rows(repeats=repeats):
            fields = {k: row[k] for k in ("workload", "what", "baseline", "values") if k in row}
            target = row.get("target")
            if target is None and str(fields["what"]).startswith(("ckpt --help", "ckpt log")):
                target = 1.5
            section.rows.append(
                Ratio(
                    workload="W5",
                    what=fields["what"],
                    baseline=fields["baseline"],
                    values=list(fields["values"]),
                    target=target,
                    at_least=bool(row.get("at_least", False)),
                    absolute=str(row.get("absolute", "")),
                )
            )
        section.notes.append("Measured by `bench/startup.py` (wall time of fresh processes).")
        return section
    section.notes.append("bench/startup.py is not present: W5 not measured.")
    return section


def run(selected: list[str], quick: bool, tiny: bool, log: Any) -> list[Section]:
    cfg = _quick_settings(quick, tiny)
    sections: list[Section] = []
    for name in selected:
        more: list[Section] = []
        start = time.perf_counter()
        print(f"running {name} ...", file=log, flush=True)
        if name == "W1":
            from bench import w1_agent

            section = w1_agent.run(cfg["w1_steps"], cfg["w1_repeats"])
            try:
                from bench import w1_langgraph
            except ImportError:  # the bench extra (LangGraph) is not installed
                section.notes.append("W1 through LangGraph not measured: needs ckpt[bench].")
            else:
                steps, rounds, fsyncs = cfg["w1_langgraph"]
                started = time.perf_counter()
                graph = w1_langgraph.run(steps, rounds, fsync_steps=fsyncs)
                graph.notes.append(f"took {human_seconds(time.perf_counter() - started)}.")
                more.append(graph)
        elif name == "W2":
            from bench import w2_save

            section = w2_save.run(cfg["w2_sizes"], cfg["w2_repeats"])
        elif name == "W3":
            from bench import w3_history

            section = w3_history.run(*cfg["w3"])
        elif name == "W4":
            from bench import w4_maintenance

            section = w4_maintenance.run(*cfg["w4"])
        elif name == "W5":
            section = _w5(cfg["w5_repeats"])
        elif name == "W7":
            from bench import w7_runner

            section = w7_runner.run(*cfg["w7"])
        elif name == "WF":
            from bench import wf_files

            section = wf_files.run(*cfg["wf"])
        elif name == "WB":
            from bench import backends

            section = backends.run(
                quick=quick,
                repeats=1 if tiny else None,
                ops=3 if tiny else None,
                checkpoints=2 if tiny else None,
            )
        else:
            from bench import w6_memory

            section = w6_memory.run(*cfg["w6"])
        section.notes.append(f"{name} took {human_seconds(time.perf_counter() - start)}.")
        sections.append(section)
        sections.extend(more)
    return sections


def table(sections: list[Section]) -> str:
    lines = [
        "| workload | measure | baseline | ratio (median) | spread (min-max) | target | met "
        "| absolute |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for section in sections:
        for row in section.rows:
            if row.target is None:
                target, met = "-", "-"
            else:
                target = ("≥ " if row.at_least else "≤ ") + fmt(row.target)
                met = "yes" if row.met else "**no**"
            lines.append(
                f"| {row.workload} | {row.what} | {row.baseline} | {fmt(row.median)} | "
                f"{row.spread()} | {target} | {met} | {row.absolute} |"
            )
    return "\n".join(lines)


def _target_text(row: Ratio) -> str:
    assert row.target is not None
    return ("≥ " if row.at_least else "≤ ") + fmt(row.target)


def targets(sections: list[Section]) -> str:
    """One line per row that has a target: the median against it, and by how much it misses."""
    lines = [
        "| workload | measure | target | median | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for section in sections:
        for row in section.rows:
            if row.target is None:
                continue
            if row.met:
                verdict = "yes"
            elif row.at_least:
                verdict = f"**no**: {fmt(row.median / row.target * 100)}% of the target"
            else:
                verdict = f"**no**, {fmt(row.median / row.target)} times the target"
            lines.append(
                f"| {row.workload} | {row.what} | {_target_text(row)} | {fmt(row.median)} | "
                f"{verdict} |"
            )
    return "\n".join(lines)


def document(
    sections: list[Section], facts: dict[str, str], runs: dict[str, str], notes: str
) -> str:
    """The whole results document; ``runs`` maps each workload to when and how it last ran."""
    out = [
        "# Benchmarks",
        "",
        "Each workload's figures come from its last run (`python -m bench`, or "
        "`python -m bench --only W3` for one workload): "
        + "; ".join(f"{name} {runs[name]}" for name in runs)
        + ".",
        "",
        "Machine: "
        + ", ".join(f"{k}: {v}" for k, v in facts.items())
        + ". The machine is shared and noisy, so every figure is a ratio against a baseline "
        "measured in the same run (median and min-max over repeats).",
        "",
        table(sections),
        "",
    ]
    for section in sections:
        if section.notes:
            out.append(f"**{section.title}.** " + " ".join(section.notes))
            out.append("")
    out += ["## Targets", "", targets(sections), ""]
    if notes:
        out.append(notes.rstrip("\n"))
    return "\n".join(out) + "\n"


def _load_results(path: str) -> dict[str, Any]:
    """The stored results (see :func:`_save_results`), or an empty set."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return {"workloads": {}}
    return data if isinstance(data.get("workloads"), dict) else {"workloads": {}}


def _section_from(data: dict[str, Any]) -> Section:
    rows = [Ratio(**row) for row in data["rows"]]
    return Section(data["name"], data["title"], rows, list(data["notes"]))


def _merge_results(
    stored: dict[str, Any], sections: list[Section], mode: str, facts: dict[str, str]
) -> dict[str, Any]:
    """``stored`` with the workloads of ``sections`` replaced by this run's."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    workloads = dict(stored["workloads"])
    for section in sections:
        workloads[section.name] = {
            "when": when,
            "mode": mode,
            "machine": facts,
            "section": dataclasses.asdict(section),
        }
    return {"workloads": workloads}


def write_documents(
    out: str, results_path: str, sections: list[Section], mode: str, notes: str
) -> None:
    """Merge this run into the stored results, then rewrite the document from all of them."""
    facts = machine()
    merged = _merge_results(_load_results(results_path), sections, mode, facts)
    stored = merged["workloads"]
    # In suite order; a section named otherwise (WB's is "backends") after them.
    names = [name for name in SECTION_ORDER if name in stored]
    names += sorted(name for name in stored if name not in names)
    entries = [merged["workloads"][name] for name in names]
    runs = {
        name: f"{entry['when']}" + ("" if entry["mode"] == "full" else f" ({entry['mode']} mode)")
        for name, entry in zip(names, entries, strict=True)
    }
    text = document([_section_from(e["section"]) for e in entries], facts, runs, notes)
    for path, content in (
        (results_path, json.dumps(merged, indent=1, sort_keys=True) + "\n"),
        (out, text),
    ):
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the test suite's run)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="e.g. W1,W3")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument(
        "--notes",
        default=os.path.join(ROOT, "bench", "NOTES.md"),
        help="markdown appended to the document (analysis of the targets)",
    )
    parser.add_argument(
        "--results",
        help="JSON file keeping every workload's last figures, so that a run of some "
        "workloads updates the document without losing the others (default: --out with .json)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--rewrite",
        action="store_true",
        help="run nothing: rewrite the document from the stored results and the notes",
    )
    args = parser.parse_args(argv)
    selected = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in selected if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")
    if args.rewrite:
        selected = []
    sections = run(selected, args.quick, args.tiny, sys.stderr)
    print(table(sections))
    for section in sections:
        for note in section.notes:
            print(f"- {section.name}: {note}")
    if not args.no_write:
        notes = ""
        if os.path.exists(args.notes):
            with open(args.notes, encoding="utf-8") as handle:
                notes = handle.read()
        mode = "tiny" if args.tiny else "quick" if args.quick else "full"
        results = args.results or os.path.splitext(args.out)[0] + ".json"
        write_documents(args.out, results, sections, mode, notes)
        print(f"wrote {args.out} and {results}", file=sys.stderr)
    return 0
