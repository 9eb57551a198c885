"""Rows of the tables in ``docs/benchmarks.md``: each script adds to its own section's table."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
INTRO = "Rows are added by the scripts in `bench/`; the JSON files in `bench/results/` hold every figure."


def add_row(section: str, header: str, cells: list[str], path: Path = BENCHMARKS) -> None:
    """Appends ``| cells |`` to the table of ``## section`` (the section and its ``header`` table are
    created at the end of the file when missing); text after the table stays where it is."""
    lines = path.read_text().splitlines() if path.exists() else ["# Benchmarks", "", INTRO]
    row = "| " + " | ".join(cells) + " |"
    heading = f"## {section}"
    if heading not in lines:
        lines += ["", heading, "", *header.strip().splitlines(), row]
    else:
        at = lines.index(heading) + 1
        while at < len(lines) and not lines[at].startswith("|"):
            if lines[at].startswith("## "):  # a section without its table
                lines[at:at] = [*header.strip().splitlines(), row, ""]
                break
            at += 1
        else:
            if at == len(lines):  # the section is the last one and has no table yet
                lines += [*header.strip().splitlines(), row]
            else:
                while at < len(lines) and lines[at].startswith("|"):
                    at += 1
                lines.insert(at, row)
    path.write_text("\n".join(lines) + "\n")
