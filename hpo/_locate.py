"""Finding a study's folder from any folder, for the readers (``status``, ``best``, ``export``,
``report``, ``load_best``, ``export_best``).

``hpo run`` keeps a study in ``hpo-runs/<study>/`` under the folder it ran in (its journal, trial
folders, checkpoints). A reader given a space file looks for that folder, in order:

1. ``./hpo-runs/<study>`` (the current folder: where ``hpo run`` usually ran);
2. ``hpo-runs/<study>`` beside the space file, then in each folder above it (as git finds ``.git``),
   so ``project/search_spaces/digits.yaml`` finds ``project/hpo-runs/digits`` from anywhere.

A reader may also be given the study folder itself (``.../hpo-runs/<study>``). Nothing is created
on the way: a study found nowhere is an error naming every path looked at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import _keys as keys
from hpo._errors import UsageError
from hpo._spec import RUNS_DIR, StudySpec

if TYPE_CHECKING:
    import optuna

JOURNAL = "journal.log"


def runs_dirs(spec: StudySpec) -> list[Path]:
    """The ``hpo-runs`` folders that may hold ``spec``'s study, in the order they are tried."""
    dirs = [RUNS_DIR]
    if spec.space_file is not None:
        folder = spec.space_file.resolve().parent
        dirs += [d / RUNS_DIR for d in (folder, *folder.parents)]
    unique: dict[Path, Path] = {}
    for d in dirs:
        unique.setdefault((Path.cwd() / d).resolve(), d)
    return list(unique.values())


def _holds_study(runs_dir: Path, spec: StudySpec) -> bool:
    # A database study keeps only its trial folders (checkpoints) on disk; an embedded one its journal too.
    folder = runs_dir / spec.study.name
    return (folder / JOURNAL).is_file() if spec.study.storage is None else folder.is_dir()


def locate(spec: StudySpec) -> StudySpec:
    """``spec`` with ``runs_dir`` set to where its study is (see the module docstring).

    Raises:
        UsageError: an embedded study found nowhere; the message names every path looked at.
    """
    if spec.runs_dir != RUNS_DIR:  # already placed (a study folder given directly)
        return spec
    candidates = runs_dirs(spec)
    for runs_dir in candidates:
        if _holds_study(runs_dir, spec):
            return spec if runs_dir == RUNS_DIR else placed(spec, runs_dir)
    if spec.study.storage is not None:  # the study is in the database; its folder may not exist yet
        return spec
    looked = ", ".join(str(Path.cwd() / d / spec.study.name / JOURNAL) for d in candidates)
    raise UsageError(f"no study {spec.study.name!r}: looked for {looked}; none exists. Studies are kept in "
                     f"hpo-runs/ of the folder where `hpo run {spec.source}` ran: run it there, or give that "
                     f"study folder (hpo-runs/{spec.study.name})")


def placed(spec: StudySpec, runs_dir: Path) -> StudySpec:
    """``spec`` with its study in ``runs_dir``; a default MLflow store is the one there too (the
    store ``hpo run`` used), not a new one in the current folder."""
    from hpo.tracking import default_tracking_uri

    mlflow = spec.mlflow
    if mlflow.enabled and mlflow.tracking_uri is None:
        mlflow = dataclasses.replace(mlflow, tracking_uri=default_tracking_uri(runs_dir))
    return dataclasses.replace(spec, runs_dir=runs_dir, mlflow=mlflow)


def spec_from_study(study: optuna.Study, storage: str | None, fallback_source: str,
                    overrides: Mapping[str, Any] | None = None, sets: Sequence[str] = ()) -> StudySpec:
    """The spec a study was run with, as ``hpo run`` recorded it in the study (``storage``: its URL,
    None for the embedded store); its objective is not imported (the space file may have moved)."""
    from hpo._spec import spec_from_dict

    raw = dict(study.user_attrs.get(keys.STUDY_SPEC) or {})
    raw.setdefault("study", {})["storage"] = storage
    source = study.user_attrs.get(keys.STUDY_SPACE_FILE) or fallback_source
    return spec_from_dict(raw, source=source, overrides=overrides, sets=sets, import_objective=False)


def spec_from_study_dir(folder: str | Path, overrides: Mapping[str, Any] | None = None,
                        sets: Sequence[str] = ()) -> StudySpec:
    """The spec of the study kept in ``folder`` (``.../hpo-runs/<study>``), read without writing.

    Raises:
        UsageError: ``folder`` holds no study journal, or the journal holds no study of that name.
    """
    import optuna
    from optuna.storages.journal import JournalStorage

    from hpo._journal import open_journal

    folder = Path(folder).resolve()
    journal = folder / JOURNAL
    if not journal.is_file():
        studies = sorted(p.parent.name for p in folder.glob(f"*/{JOURNAL}")) if folder.is_dir() else []
        if studies:  # a runs folder: name what it holds
            raise UsageError(f"{folder}: a runs folder holding the studies {', '.join(studies)}; give one of them, "
                             f"e.g. {folder / studies[0]}")
        raise UsageError(f"{folder}: not a study folder: expected {journal}, the journal `hpo run` writes; give "
                         "a study folder (hpo-runs/<study>) or a space file")
    storage = JournalStorage(open_journal(journal, read_only=True))
    try:
        study = optuna.load_study(study_name=folder.name, storage=storage)
    except KeyError:
        raise UsageError(f"{journal}: holds no study named {folder.name!r}; the folder's name is the "
                         "study's name: was it renamed?") from None
    spec = spec_from_study(study, None, str(folder), overrides, sets)
    return placed(spec, folder.parent)


def reader_spec(target: str | Path, overrides: Mapping[str, Any] | None = None,
                sets: Sequence[str] = ()) -> StudySpec:
    """The located spec of a space file or a study folder, for a command that only reads: the
    objective is not imported (a reader needs neither the user's package nor torch)."""
    from hpo._spec import load_spec

    if Path(target).is_dir():
        return spec_from_study_dir(target, overrides, sets)
    return locate(load_spec(target, overrides=overrides, sets=sets, import_objective=False))
