"""What every script in ``bench/`` needs to run and to write its result.

A script is run as ``python bench/NAME.py`` from anywhere, so its own folder is on ``sys.path`` and it
imports this module as ``from common import ...``; importing it puts the repository root first on
``sys.path`` (ahead of ``bench/``, whose ``inference.py`` would otherwise shadow the ``inference``
package), so the project's packages import as usual. The scripts import each other the same way
(``from report import add_row``).

- ``arg_parser(__doc__)``: the command line, with the module docstring as its help;
- ``command_line(script, argv)``: the command a result file records;
- ``write_result(name, result)``: ``bench/results/NAME.json`` (and the result on stdout);
- ``resident_mb()``, ``peak_mb()``, ``reset_peak()``: the process's resident set and its high-water mark
  (Linux ``/proc``);
- ``machine()``: where it ran (platform, CPUs, threads, Python and torch versions);
- ``run_in_child(argv)``: one measurement in a fresh Python process (a peak resident set of its own),
  its result the last JSON line the child prints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

if sys.path[0] != str(ROOT):
    sys.path.insert(0, str(ROOT))


def arg_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose ``--help`` shows ``doc`` (the script's docstring) as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """``python bench/SCRIPT ARGS...``: how to run the measurement again from the repository root.
    ``script`` is the script's file (``__file__``) or name; ``argv`` defaults to ``sys.argv[1:]``."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", f"bench/{Path(script).name}", *args])


def write_result(
    name: str, result: dict, *, print_without: Collection[str] = (), quiet: bool = False
) -> Path:
    """Writes ``result`` to ``bench/results/NAME.json`` (indented, one newline at the end) and returns the
    path; prints it without the keys ``print_without`` (bulky per-step lists), or only the path if
    ``quiet``."""
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    if not quiet:
        print(json.dumps({k: v for k, v in result.items() if k not in print_without}, indent=2))
    print(f"wrote {path}", flush=True)
    return path


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def resident_mb() -> float:
    """The resident set of this process now (``VmRSS``), in MiB."""
    return _status_kb("VmRSS") / 1024


def peak_mb() -> float:
    """The high-water mark of this process's resident set (``VmHWM``), in MiB: since the process
    started, or since the last ``reset_peak()``."""
    return _status_kb("VmHWM") / 1024


def reset_peak() -> None:
    """Sets the high-water mark ``peak_mb()`` to the current resident set (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def machine() -> dict:
    """Where a measurement ran: ``platform``, ``processor``, ``cpus`` (of the machine), ``threads``
    (torch's intra-op threads), ``python`` and ``torch`` versions."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


class ChildFailed(RuntimeError):
    """A ``run_in_child`` process that exited non-zero or printed no JSON line. ``stderr`` is all it wrote
    there, ``last_line`` its last line (the exception) or a guess when it wrote none."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.returncode, self.stderr = returncode, stderr
        self.last_line = (stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
        super().__init__(f"{' '.join(argv)} exited with {returncode}: {self.last_line}")


def run_in_child(argv: Sequence[str], *, extra_env: dict[str, str] | None = None) -> dict:
    """Runs ``python ARGV...`` (this interpreter) in a fresh process, with ``extra_env`` added to this
    process's environment, and returns the last line of its stdout parsed as JSON; raises ``ChildFailed``
    when it fails or prints none."""
    env = {**os.environ, **extra_env} if extra_env else None
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ChildFailed(argv, proc.returncode, proc.stderr)
    return json.loads(lines[-1])
