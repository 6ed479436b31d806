"""Bad input is exit 2 with ONE line naming the file, the key path, what was expected and found.

Table-driven like tests/hpo/test_spec.py: each case builds a space file (or a folder) and names
the fragments the single error line must contain.
"""

from __future__ import annotations

import errno
import os

import pytest
import yaml
from _helpers import base_space

from hpo import cli as cli_module


def dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


BASE = dump(base_space())
GRID_OF_HUGE_INT = dump(base_space(sampler={"name": "grid"}, space={"n": {"type": "int", "low": 0, "high": 10**12}}))
MANY_CHOICES = dump(base_space(space={f"p{i}": {"choices": list(range(100))} for i in range(101)}))
ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7))

FIFO = object()  # marks the case whose space file is a named pipe

# name: (file content: bytes / str, or None for a folder; key path or "" ; fragments the line must contain)
CASES = {
    "binary_file": (b"study: {}\n\x00\x01\x02", "", ["binary file", "byte offset 10"]),
    "not_utf8": (b"study: {name: caf\xe9}\n", "", ["not UTF-8", "byte 0xe9 at byte offset 17",
                                                  "save the file as UTF-8"]),
    "empty_file": (b"", "", ["the file is empty", "expected sections"]),
    "only_comments": (b"# nothing yet\n", "", ["the file is empty"]),
    "a_folder": (None, "", ["is a folder", "expected a YAML space file"]),
    "a_pipe": (FIFO, "", ["not a regular file"]),  # reading it would wait forever for a writer
    "over_1_mb": ("a: " + "x" * 1_000_100 + "\n", "", ["1,000,104 bytes", "at most 1,000,000 bytes"]),
    "too_many_choices": (MANY_CHOICES, "space", ["10,201 params and choices/values", "the limit is 10,000"]),
    "grid_of_a_huge_range": (GRID_OF_HUGE_INT, "space.n", ["1,000,000,000,001 points", "limit is 100,000"]),
    "when_text_on_a_huge_range": (dump(base_space(space={"n": {"type": "int", "low": 0, "high": 10**15},
                                                          "x": {"type": "float", "low": 0, "high": 1,
                                                                "when": {"n": "five"}}})),
                                  "space.x.when.n", ["'five' is not a possible value of n (integers 0 to"]),
    "alias_bomb": (ALIAS_BOMB, "", ["more than 100,000 values", "aliases"]),
    "alias_cycle": ("a: &a [1, *a]\n", "", ["alias refers to a mapping or list that contains it"]),
    "nested_too_deeply": ("a: " + "[" * 3000 + "]" * 3000 + "\n", "", ["nested too deeply"]),
    "impossible_date": ("study: {name: 2024-13-45}\n", "", ["month must be in 1..12", "quote it"]),
    "bad_binary_int": ("study: {n_trials: !!int 0b}\n", "", ["not a usable YAML value"]),
    "unhashable_key": ("? [a, b]\n: 1\n", "", ["line 1", "unhashable key"]),
    "dup_int_and_str": ('study: {1: a, "1": b}\n', "", ["line 1", "duplicate key '\"1\"' (the same key as '1')"]),
    "dup_bool_and_str": ("study: {true: a, 'true': b}\n", "", ["duplicate key \"'true'\" (the same key as 'true')"]),
    "dup_float_and_int": ("space: {1.0: a, 1: b}\n", "", ["duplicate key '1' (the same key as '1.0')"]),
    "dup_yes_and_true": ("space: {yes: a, true: b}\n", "", ["duplicate key 'true' (the same key as 'yes')"]),
    "study_name_256_bytes": (dump(base_space(study={"name": "é" * 128})), "study.name",
                             ["at most 255 bytes", "has 256", "set study.name"]),
    "study_name_newline": (dump(base_space(study={"name": "a\nb"})), "study.name",
                           ["control characters", "'a\\nb'"]),
    "study_name_tab": (dump(base_space(study={"name": "a\tb"})), "study.name", ["control characters"]),
    "study_name_dash": (dump(base_space(study={"name": "-rf"})), "study.name", ["must not start with '-' or '.'"]),
    "study_name_dot": (dump(base_space(study={"name": ".hidden"})), "study.name", ["must not start with '-' or '.'"]),
    "option_key_not_text": (dump(base_space(sampler={"name": "tpe", "options": {1: 2}})), "sampler.options.1",
                            ["expected a key name (text), got 1 (int)"]),
    "options_not_a_mapping": (dump(base_space(sampler={"name": "tpe", "options": 1})), "sampler.options",
                              ["expected a mapping, got 1 (int)"]),
    "default_sampler_options_not_a_mapping": (dump(base_space(sampler={"options": "float"})), "sampler.options",
                                              ["expected a mapping, got 'float' (str)"]),
    "default_pruner_options_not_a_mapping": (dump(base_space(pruner={"options": [1]})), "pruner.options",
                                             ["expected a mapping, got [1] (list)"]),
    "default_pruner_given_hyperbands_option": (dump(base_space(pruner={"options": {"reduction_factor": 2}})),
                                               "pruner.options.reduction_factor",
                                               ["not an option of the median pruner",
                                                "option of successive_halving, hyperband: name one, e.g. pruner: "
                                                "{name: successive_halving, options: {reduction_factor: ...}}"]),
    "int_beyond_64_bits": (dump(base_space(study={"n_trials": 10**30})), "study.n_trials",
                           ["expected a number between"]),
    "float_range_too_wide": (dump(base_space(space={"x": {"type": "float", "low": -1e308, "high": 1e308}})),
                             "space.x.high", ["too wide"]),
    "param_name_control_char": (dump(base_space(space={"a\x07": {"type": "float", "low": 0, "high": 1}})),
                                "space.a\\x07", ["printable, non-empty text"]),
    # MLflow 3 refuses its folder store: the run trained every trial and logged nothing, exit 0
    "mlflow_folder_store": (dump(base_space(mlflow={"tracking_uri": "./mlruns"})), "mlflow.tracking_uri",
                            ["'./mlruns' is a folder", "sqlite:///./mlruns/mlflow.db"]),
    "mlflow_file_uri": (dump(base_space(mlflow={"tracking_uri": "file:///tmp/mlruns"})), "mlflow.tracking_uri",
                        ["is a folder", "sqlite:////tmp/mlruns/mlflow.db"]),
    "mlflow_unknown_scheme": (dump(base_space(mlflow={"tracking_uri": "bogus://x"})), "mlflow.tracking_uri",
                              ["unknown scheme 'bogus'"]),
    "module_objective_missing": (dump(base_space(objective={"name": "no_such_pkg.mod:fn"})), "objective.name",
                                 ["cannot import module 'no_such_pkg.mod'", "No module named 'no_such_pkg'",
                                  "the Python path"]),
    "file_objective_missing": (dump(base_space(objective={"name": "nowhere.py:fn"})), "objective.name",
                               ["file 'nowhere.py' not found (looked in /", "the space file's folder"]),
    "file_objective_no_function": (dump(base_space(objective={"name": "objs.py:nope"})), "objective.name",
                                   ["file 'objs.py' has no attribute 'nope'", "def nope(params, ctx)"]),
    "module_objective_no_function": (dump(base_space(objective={"name": "objs:nope"})), "objective.name",
                                     ["module 'objs' has no attribute 'nope'"]),
    "file_objective_raises_on_import": (dump(base_space(objective={"name": "broken.py:fn"})), "objective.name",
                                        ["importing file 'broken.py' raised ZeroDivisionError", "broken.py, line 2"]),
    "objective_not_callable": (dump(base_space(objective={"name": "objs.py:math"})), "objective.name",
                               ["is module, not a function"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_space_file_is_one_line_exit_2(name, workdir, cli, one_line_error):
    content, key_path, fragments = CASES[name]
    (workdir / "broken.py").write_text("x = 1\ny = 1 / 0\n")
    path = workdir / "space.yaml"
    if content is None:
        path.mkdir()
    elif content is FIFO:
        os.mkfifo(path)
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    line = one_line_error(cli("validate", path), "space.yaml", *fragments)
    assert f": {key_path}: " in line if key_path else True


def test_study_name_from_an_odd_file_name_says_where_it_came_from(workdir, cli, one_line_error):
    doc = base_space()
    path = workdir / "-x.yaml"
    path.write_text(dump(doc))
    one_line_error(cli("validate", path), "study.name", "taken from the file name '-x.yaml'")


def test_space_file_name_too_long_for_the_file_system(workdir, cli, one_line_error):
    path = workdir / ("s" * 300 + ".yaml")
    one_line_error(cli("validate", path), "cannot read the file: File name too long")


def test_set_with_an_empty_key_name(write_space, cli, one_line_error):
    one_line_error(cli("validate", write_space(base_space()), "--set", "space..x=1"),
                          "--set", "space..x", "empty name")


def test_set_value_yaml_cannot_construct_is_taken_as_text(write_space, cli):
    """``2024-13-45`` is a date to YAML, with month 13: as an override value it stays the string."""
    code, out, err = cli("validate", write_space(base_space()), "--set", "study.name=2024-13-45")
    assert code == 0, err
    assert "study '2024-13-45'" in out


def test_user_text_is_never_read_as_rich_markup(write_space, cli):
    doc = base_space(space={"[/x]": {"type": "categorical", "choices": ["[/y]", "[bold]z"]}})
    code, out, err = cli("validate", write_space(doc))
    assert code == 0, err
    assert "[/x]" in out and "[/y]" in out and "[bold]z" in out


def test_error_line_escapes_control_characters(write_space, cli, one_line_error):
    doc = base_space(sampler={"name": "tpe", "options": {"a\nb": 1}})
    one_line_error(cli("validate", write_space(doc)), "sampler.options.a\\nb: not an option")


def test_user_os_error_is_one_line_naming_the_path(monkeypatch, cli, one_line_error):
    def denied(args):
        raise PermissionError(errno.EACCES, "Permission denied", "/data/hpo-runs/x/journal.log")

    monkeypatch.setitem(cli_module.COMMANDS, "validate", denied)
    one_line_error(cli("validate", "x.yaml"), "/data/hpo-runs/x/journal.log", "Permission denied",
                          "check its permissions")


def test_disk_full_without_a_file_name_names_the_disk(monkeypatch, workdir, cli, one_line_error):
    """``os.write`` on a full disk names no file: the line names the folder and its disk instead.

    A disk that fills while a command runs is exit 1 (rerun to resume); at start it is exit 2 (pre-flight).
    """
    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(cli_module.COMMANDS, "validate", full)
    code, out, err = cli("validate", "x.yaml")
    assert code == 1 and len(err.strip().splitlines()) == 1, (code, err)
    for fragment in (f"writing under {workdir}", "No space left on device", "the disk mounted at /", "rerun"):
        assert fragment in err, (fragment, err)


def test_other_os_errors_keep_their_traceback(monkeypatch, cli):
    """Only the user's paths and disks are bad input; a refused socket is a bug to see in full."""
    def refused(args):
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setitem(cli_module.COMMANDS, "validate", refused)
    with pytest.raises(ConnectionRefusedError):
        cli("validate", "x.yaml")


IMPORT_MARKER = "from pathlib import Path\nPath('imported.marker').touch()\ndef fn(params, ctx):\n    return 0.0\n"


def test_validate_imports_the_objective_and_the_readers_do_not(workdir, write_space, cli):
    """Importing runs user code: validate does (to check it), status and best must not."""
    (workdir / "marked.py").write_text(IMPORT_MARKER)
    path = write_space(base_space(objective={"name": "marked.py:fn"}))
    for reader in ("status", "best"):
        cli(reader, path)
        assert not (workdir / "imported.marker").exists(), reader
    assert cli("validate", path)[0] == 0
    assert (workdir / "imported.marker").exists()


def test_yaml_merge_keys_still_work(write_space, cli):
    """``<<: *anchor`` copies a mapping; a key beside it overrides, which is not a duplicate."""
    text = BASE.replace("space:\n  x:\n", "space:\n  a: &p {type: float, low: 0.0, high: 1.0}\n"
                                         "  b: {<<: *p, high: 2.0}\n  x:\n")
    code, out, err = cli("validate", write_space(text))
    assert code == 0, err
    assert "float in [0.0, 2.0]" in out and "float in [0.0, 1.0]" in out


@pytest.mark.parametrize(("assignment", "key", "fragment"), [
    # an empty shell variable would otherwise reset the key to its default without a word
    ("study.direction=", "study.direction", "empty value; write study.direction=null to reset the key"),
    # not YAML, so taken as text: the error is the flag's, not the file's
    ("study.n_trials=[1", "study.n_trials", "expected an integer, got '[1' (str)"),
    ("objective.fixed.x=", "objective.fixed.x", "empty value"),
])
def test_a_bad_set_value_is_blamed_on_the_flag(write_space, cli, assignment, key, fragment):
    code, _, err = cli("validate", write_space(base_space()), "--set", assignment)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: --set: {key}: ") and fragment in lines[0], err


def test_set_null_resets_a_key_to_its_default(write_space, cli):
    code, out, err = cli("validate", write_space(base_space(study={"direction": "maximize", "metric": "loss"})),
                         "--set", "study.direction=null")
    assert code == 0 and "minimize" in out, (out, err)
    # a knob that refuses null itself: the key is removed, its default applies
    doc = base_space(objective={"name": "image_classifier", "fixed": {"dataset": "digits", "max_epochs": 3}},
                     space={"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
                     study={"direction": "maximize", "metric": "val_acc"})
    code, out, err = cli("validate", write_space(doc), "--set", "objective.fixed.max_epochs=null")
    assert code == 0, (out, err)
