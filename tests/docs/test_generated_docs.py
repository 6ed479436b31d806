"""The generated references in docs/ match the code they are generated from."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_matches_the_parser():
    from hpo._cli_doc import COMMAND, markdown

    text = (ROOT / "docs" / "cli.md").read_text()
    assert text == markdown(), f"docs/cli.md is out of date: run `{COMMAND} > docs/cli.md`"


def test_cli_reference_lists_every_command_and_flag():
    import argparse

    from hpo._cli_doc import markdown
    from hpo.cli import COMMANDS, build_parser

    text = markdown()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMANDS)
    for name, parser in sub.choices.items():
        assert f"## `hpo {name}`" in text
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help") and action.help != argparse.SUPPRESS:
                    assert f"`{flag}`" in text, (name, flag)
