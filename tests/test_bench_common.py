"""bench/common.py: the command a result records, the result file, the child-process measurement and the
/proc memory readings."""

from __future__ import annotations

import json
import os
import sys

import pytest

from bench import common


def test_command_line_from_the_script_file_and_its_arguments(monkeypatch):
    assert common.command_line("/any/where/bench/sru_memory.py", ["--slots", "16"]) == (
        "python bench/sru_memory.py --slots 16"
    )
    assert common.command_line("sru_memory.py", []) == "python bench/sru_memory.py"
    monkeypatch.setattr(sys, "argv", ["bench/train_step.py", "--data-root", "../shared/data"])
    assert common.command_line("train_step.py") == "python bench/train_step.py --data-root ../shared/data"


def test_write_result_writes_indented_json_and_prints_it_without_bulky_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    result = {"benchmark": "x", "all_s": [1.0, 2.0], "nested": {"a": 1}}
    path = common.write_result("x-cpu", result, print_without={"all_s"})
    assert path == tmp_path / "results" / "x-cpu.json"
    assert path.read_text() == json.dumps(result, indent=2) + "\n"
    printed = capsys.readouterr().out
    assert '"nested"' in printed and "all_s" not in printed and f"wrote {path}" in printed
    common.write_result("x-cpu", result, quiet=True)
    assert capsys.readouterr().out == f"wrote {path}\n"


def test_run_in_child_returns_the_last_json_line_of_a_fresh_process():
    code = "import json, os; print('warm-up'); print(json.dumps({'pid': os.getpid(), 'v': os.environ['V']}))"
    row = common.run_in_child(["-c", code], extra_env={"V": "7"})
    assert row["v"] == "7" and row["pid"] != os.getpid()


def test_run_in_child_failure_names_the_last_stderr_line():
    with pytest.raises(common.ChildFailed) as failed:
        common.run_in_child(["-c", "print('{}'); raise ValueError('too big')"])
    assert failed.value.returncode == 1 and failed.value.last_line == "ValueError: too big"
    with pytest.raises(common.ChildFailed) as silent:
        common.run_in_child(["-c", "pass"])
    assert silent.value.last_line == "killed (out of memory?)"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status")
def test_peak_is_at_least_the_resident_set_and_reset_brings_it_down():
    block = b"x" * (64 * 2**20)  # 64 MiB written, then freed
    del block
    assert common.peak_mb() >= common.resident_mb() + 32
    common.reset_peak()
    assert common.peak_mb() < common.resident_mb() + 32
