"""docs/knobs.md is the output of ``python -m objectives.knobs --markdown``: they cannot drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from objectives import knobs as knobs_cli
from objectives._knobs import KNOBS

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "knobs.md"


def test_docs_knobs_md_is_the_generated_table():
    assert DOC.read_text(encoding="utf-8") == knobs_cli.markdown(), (
        f"docs/knobs.md is out of date: run `{knobs_cli.COMMAND} > docs/knobs.md`"
    )


def test_the_table_has_a_row_per_knob_with_its_default_and_allowed_values():
    text = knobs_cli.markdown()
    assert text.splitlines()[0] == knobs_cli.HEADER and knobs_cli.COMMAND in knobs_cli.HEADER
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [k.name for k in KNOBS]
    lr = next(row for row in rows if row.startswith("| `lr` |"))
    assert "| `0.001` | > 0.0 |" in lr and "| any module |" in lr
    shortcut = next(row for row in rows if row.startswith("| `shortcut` |"))
    assert "one of A, B" in shortcut and "built-ins only, with arch: resnet" in shortcut


def test_module_entry_prints_markdown_without_importing_torch():
    code = ("import runpy, sys; sys.argv = ['objectives.knobs', '--markdown']; "
            "exec('try:\\n runpy.run_module(\"objectives.knobs\", run_name=\"__main__\")\\nexcept SystemExit: pass'); "
            "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True, text=True)
    assert out.stdout == knobs_cli.markdown()


def test_module_entry_without_a_format_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "objectives.knobs"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "choose an output format: --markdown" in out.stderr
