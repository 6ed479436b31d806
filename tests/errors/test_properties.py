"""Property-based tests: no space file and no --set override makes `hpo validate` crash.

Whatever the document, the answer is exit 0, or exit 2 with one line naming the file; never a
traceback and never another exit code. Runs in-process (the ``cli`` fixture) for speed.
"""

from __future__ import annotations

import datetime

import yaml
from _helpers import base_space
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hpo._spec import _SCHEMA

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Names the validator knows, so random documents reach deep into the sections, not only the
# "unknown key" check at the top.
KNOWN_KEYS = [
    "study", "sampler", "pruner", "objective", "space", "mlflow", "name", "direction", "directions", "metric",
    "metrics", "n_trials", "timeout", "seed", "storage", "max_consecutive_failures", "max_retries",
    "heartbeat_interval", "heartbeat_grace", "fsync", "trial_timeout", "options", "fixed", "tracking_uri",
    "experiment", "enabled", "type", "low", "high", "log", "step", "values", "choices", "when", "x", "lr",
    "n_startup_trials", "<<",
]
KNOWN_VALUES = ["float", "int", "categorical", "minimize", "maximize", "grid", "tpe", "random", "cmaes", "nsga2",
                "median", "none", "hyperband", "objs.py:quadratic", "image_classifier", "loss", "x", "sgd", "[/x]"]

keys = st.one_of(
    st.sampled_from(KNOWN_KEYS), st.text(max_size=12), st.integers(-3, 3), st.booleans(), st.none(),
    st.floats(allow_nan=False, width=32),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(), st.text(max_size=20), st.sampled_from(KNOWN_VALUES), st.dates(),
    st.datetimes(max_value=datetime.datetime(9999, 1, 1)),
)
trees = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
values = st.sampled_from(KNOWN_VALUES) | trees


def section(names: list[str]) -> st.SearchStrategy:
    """A mapping of the section's own keys, so validation goes past the unknown-key check (random
    keys come from ``trees``)."""
    return st.dictionaries(st.sampled_from(names), values, max_size=len(names))


def patched(patch: dict) -> dict:
    """A valid space with ``patch``'s sections merged in: most of it passes, the patch is what is tested."""
    doc = base_space()
    for name, value in patch.items():
        doc[name] = {**doc[name], **value} if isinstance(doc.get(name), dict) and isinstance(value, dict) else value
    return doc


params = st.dictionaries(
    st.sampled_from(["x", "lr", "opt"]) | keys,
    section(["type", "low", "high", "log", "step", "values", "choices", "when"]) | trees,
    max_size=4,
)
structured = st.fixed_dictionaries({}, optional={
    "study": section(list(_SCHEMA["study"])),
    "sampler": section(["name", "options"]),
    "pruner": section(["name", "options"]),
    "objective": section(["name", "fixed"]),
    "space": params,
    "mlflow": section(list(_SCHEMA["mlflow"])),
})
documents = st.one_of(st.dictionaries(st.sampled_from(KNOWN_KEYS[:6]) | keys, trees, max_size=7), structured,
                      structured.map(patched))


def assert_clean(result: tuple[int, str, str], *sources: str) -> None:
    """Exit 0, or exit 2 with one ``error:`` line naming one of ``sources`` (the file, or --set)."""
    code, out, err = result
    assert "Traceback" not in out + err
    assert code in (0, 2), (code, out, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert any(f"error: {source}" in lines[0] or f"/{source}: " in lines[0] for source in sources), err


@SETTINGS
@given(doc=documents)
@example(doc=base_space(sampler={"name": "grid"}, space={"n": {"type": "int", "low": 0, "high": 10**12}}))
@example(doc=base_space(space={"n": {"type": "int", "low": 0, "high": 10**12},
                               "x": {"type": "float", "low": 0, "high": 1, "when": {"n": "a"}}}))
@example(doc={"space": {"[/x]": {"choices": ["[/y]"]}}, "objective": {"name": "objs.py:quadratic"}})
def test_random_space_files_exit_0_or_2(doc, write_space, cli):
    path = write_space(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    assert_clean(cli("validate", path), path.name)


@SETTINGS
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@example(data=b"? [a]\n: 1\n")
@example(data=b"a: 2020-13-45\n")
@example(data=b"a: &a [*a]\n")
def test_random_bytes_as_space_file_exit_0_or_2(data, workdir, cli):
    path = workdir / "raw.yaml"
    path.write_bytes(data)
    assert_clean(cli("validate", path), path.name)


VALID_PATHS = [f"{name}.{key}" for name, keys_ in _SCHEMA.items() for key in keys_] + [
    f"space.x.{key}" for key in ("type", "low", "high", "log", "step", "values", "choices", "when")]
key_paths = st.sampled_from(VALID_PATHS) | st.lists(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8),
                                                    min_size=1, max_size=4).map(".".join)
set_values = st.one_of(
    st.text(max_size=30), st.sampled_from(KNOWN_VALUES),
    trees.map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()),
)


@SETTINGS
@given(assignments=st.lists(st.tuples(key_paths, set_values), min_size=1, max_size=3))
@example(assignments=[("study.seed", str(10**400))])
@example(assignments=[("space..x", "1")])
@example(assignments=[("sampler.options", "1")])
@example(assignments=[("objective.fixed", "[a]")])
@example(assignments=[("objective.name", "nowhere_module:f")])
def test_random_overrides_exit_0_or_2(assignments, write_space, cli):
    path = write_space(base_space())
    sets = [f"--set={key}={value}" for key, value in assignments]
    assert_clean(cli("validate", path, *sets), path.name, "--set")
