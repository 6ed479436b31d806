"""The ``hpo`` command. Heavy imports (torch, Lightning, MLflow) happen inside the commands that need them.

Exit codes: 0 success, 2 bad input, 1 anything else, 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from hpo._errors import HpoError, SpecError, UsageError, disk_full_error, one_line, os_error_message

# soft_wrap: a long line (a path, an error) is printed whole and left to the terminal to fold; rich
# would otherwise break it at 80 columns when the output is a pipe or a file, paths included.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return register


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad flag or command as one line naming the help to read (argparse printed its
    whole usage block first), and a close command name suggested."""

    def error(self, message: str) -> NoReturn:
        import re

        from hpo._registry import did_you_mean

        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:
            known = re.findall(r"'([^']*)'", bad.group(2))
            message += did_you_mean(bad.group(1), known)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hpo",
        description="Hyperparameter search for PyTorch Lightning objectives, on Optuna and MLflow.",
        epilog="Run `hpo COMMAND --help` for a command's flags. Exit codes: 0 ok, 2 bad input, 1 other error, "
               "130/143/129 interrupted by Ctrl-C/SIGTERM/SIGHUP (run the same command again to resume).",
    )
    from hpo import __version__

    parser.add_argument("--version", action="version", version=f"hpo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_space(name: str, help_text: str, space_help: str = "the space file (YAML)") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("space", help=space_help)
        p.add_argument("--storage", help="study storage URL (overrides study.storage)")
        p.add_argument("--tracking-uri", help="MLflow tracking URI (overrides mlflow.tracking_uri)")
        p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                       help="override any key of the space file, e.g. --set study.seed=3 (repeatable; "
                            "KEY=null resets a key to its default)")
        return p

    run = with_space("run", "create or resume the study and run its trials")
    run.add_argument("--n-trials", type=_positive_int, help="total trials of the study (overrides study.n_trials)")
    run.add_argument("--timeout", type=_positive_float, help="stop starting trials after this many seconds")
    run.add_argument("--seed", type=int, help="sampler seed (overrides study.seed)")
    run.add_argument("--jobs", type=_positive_int, default=1, help="worker processes on this machine (default 1)")
    run.add_argument("--no-report", action="store_true", help="do not write the dashboard at the end")
    _add_cluster_arguments(run)

    with_space("validate", "check the space file and print the resolved space; runs nothing")
    with_space("status", "trials by state, best trial, time spent, workers seen", READER_SPACE_HELP)
    with_space("best", "print the best trial's full config (the Pareto set for multi-objective studies)",
               READER_SPACE_HELP)

    export = with_space("export", "write the best config as YAML (or JSON by suffix)", READER_SPACE_HELP)
    export.add_argument("-o", "--output", default="best.yaml", help="output file (default best.yaml)")
    export.add_argument("--top", type=_positive_int, default=1, help="export the K best trials")

    train = sub.add_parser("train", help="retrain once from an exported config", description="retrain once from an exported config")
    train.add_argument("config", help="a file written by `hpo export`")
    train.add_argument("-o", "--output", help="where to save the final model (default "
                       "./hpo-runs/STUDY/retrain/trial-N-TIME/model.pt, below the current folder)")
    train.add_argument("--tracking-uri", help="MLflow tracking URI (default: the one the study used)")
    train.add_argument("--quantize", metavar="MODE",
                       help="also write an int8 copy of the model (dynamic or static, static calibrates on training "
                            "batches) and compare accuracy, size and CPU latency of both (needs torchao)")

    report = with_space("report", "write the dashboard HTML and log it to the study's MLflow run", READER_SPACE_HELP)
    report.add_argument("-o", "--output", default=None, help="output folder for report.html (default the study's "
                        "run folder), or an .html file name")

    ui = sub.add_parser("ui", help="start the MLflow UI against the study's tracking store",
                        description="start the MLflow UI against the study's tracking store")
    ui.add_argument("space", nargs="?", help="the space file (default: the store under ./hpo-runs)")
    ui.add_argument("--tracking-uri", help="MLflow tracking URI")
    ui.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    ui.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override a key of the space file, as for hpo run (e.g. the study.name it chose)")
    _add_proxy_parser(sub)
    return parser


def _add_cluster_arguments(run: argparse.ArgumentParser) -> None:
    from hpo.cluster import ENGINES  # names only: an engine's module is imported when chosen
    from hpo.cluster._slurm import add_slurm_arguments

    run.add_argument("--cluster", metavar="ENGINE",
                     help=f"run the --jobs workers on a cluster engine instead of this machine: "
                          f"{', '.join(ENGINES.names())}")
    run.add_argument("--address", help="with --cluster ray: the cluster's address, HOST:PORT (default auto: "
                     "$RAY_ADDRESS, else the cluster started on this machine by `ray start`)")
    add_slurm_arguments(run, _positive_int, _positive_float)


def _add_proxy_parser(sub: Any) -> None:
    from hpo._proxy import DEFAULT_THREADS

    text = ("serve a study database to many workers over gRPC (workers use --storage grpc://HOST:PORT); "
            "it holds the database connections and the lock that keeps n_trials exact")
    proxy = sub.add_parser("proxy", help=text, description=text)
    proxy.add_argument("--storage", required=True, help="the database URL, e.g. postgresql://user@host/db")
    proxy.add_argument("--host", default="0.0.0.0", help="interface to bind (default 0.0.0.0: all)")
    proxy.add_argument("--port", type=_positive_int, default=13000, help="port (default 13000)")
    proxy.add_argument("--threads", type=_positive_int, default=DEFAULT_THREADS,
                       help=f"server threads: about one per worker waiting for the study lock (default {DEFAULT_THREADS})")


# Commands that only read a study: they find it from any folder (hpo._locate).
READERS = frozenset({"status", "best", "export", "report", "ui"})
READER_SPACE_HELP = ("the space file (its study is found in ./hpo-runs, else in hpo-runs beside the file or in a "
                     "folder above it), or a study folder hpo-runs/<study>")


def load(args: argparse.Namespace) -> Any:
    """The validated spec, with every CLI flag applied over the file; a reader's spec is located
    (its study found from any folder, or given as a study folder)."""
    from hpo._locate import reader_spec
    from hpo._spec import load_spec

    overrides = {
        "study.n_trials": getattr(args, "n_trials", None),
        "study.timeout": getattr(args, "timeout", None),
        "study.seed": getattr(args, "seed", None),
        "study.storage": getattr(args, "storage", None),
        "mlflow.tracking_uri": getattr(args, "tracking_uri", None),
    }
    if args.command in READERS:
        return reader_spec(args.space, overrides=overrides, sets=args.set)
    return load_spec(args.space, overrides=overrides, sets=args.set)


@command("validate")
def cmd_validate(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from hpo._components import sampler_kwargs
    from hpo._preflight import check_objective_imports

    spec = load(args)
    check_objective_imports(spec)
    s = spec.study
    # Names and values come from the user's file: escaped, so `[/x]` prints as text, not Rich markup.
    console.print(f"[green]{escape(spec.source)}: valid[/green]")
    goal = ", ".join(f"{d} {m}" for d, m in zip(s.directions, s.metrics))

    def component(name: str, options: dict[str, Any]) -> str:
        return f"{name} {options}" if options else name

    trials = f"{s.n_trials} trial" + ("s" if s.n_trials != 1 else "")
    # the options the run builds them with (TPE's implied constant_liar included)
    sampler = component(spec.sampler.name, sampler_kwargs(spec.sampler.name, spec.sampler.options))
    pruner = component(spec.pruner.name, spec.pruner.options)
    console.print(escape(f"study {s.name!r}: {goal}; {trials}; sampler {sampler}; pruner {pruner}"))
    console.print(escape(f"objective {spec.objective.name}; fixed {spec.objective.fixed or '{}'}"))
    if (rule := s.stop_when) is not None:
        when = ([f"once the best value reaches {rule.target:g}"] if rule.target is not None else []) + (
            [f"after {rule.patience} finished trials without improving by more than {rule.min_delta:g}"]
            if rule.patience is not None else [])
        console.print(escape(f"stops early {' or '.join(when)}"))
    if spec.warm_start:
        console.print(escape("warm start: " + ", ".join(item.study and f"study:{item.study}" or
                                                     f"{item.label} ({len(item.params)} config(s))"
                                                     for item in spec.warm_start)))
    table = Table(title="Search space")
    table.add_column("param")
    table.add_column("type")
    table.add_column("range / choices")
    for p in spec.space:
        table.add_row(escape(p.name), p.type, escape(p.describe()))
    console.print(table)
    _print_sampler_warnings(spec)
    if spec.sampler.name == "grid":
        from hpo._space import grid_points

        size = len(grid_points(spec.space))
        console.print(f"grid: {size} points; the study runs {min(size, s.n_trials)} trials")
    return 0


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from hpo._progress import tail_status
    from hpo._run import run_study
    from hpo._storage import describe_storage

    from hpo.cluster._slurm import check_slurm_flags

    check_slurm_flags(args)
    spec = load(args)
    engine = _cluster_engine(args)
    where = f" on {engine.describe()}" if engine is not None else ""
    console.print(f"study {spec.study.name!r}: {spec.study.n_trials} trials, sampler {spec.sampler.name}, "
                  f"pruner {spec.pruner.name}, {args.jobs} worker(s){where}; storage {describe_storage(spec)}",
                  markup=False)
    _print_sampler_warnings(spec)
    result = run_study(spec, args.jobs, console, engine)
    study = result.study or _open(spec)
    _print_summary(spec, study)
    console.print(f"{result.stop_reason}; this run took {result.wall_seconds:.1f} s", markup=False)
    if not args.no_report and result.exit_code == 0:
        with tail_status(console, "writing the dashboard…"):
            _write_report(spec, study, None, quiet=True)
    _print_paths(spec, study, args)
    if result.exit_code in (129, 130, 143):
        console.print(f"[yellow]interrupted; resume with: hpo run {escape(_study_args(spec, args))}[/yellow]")
    return result.exit_code


def _cluster_engine(args: argparse.Namespace) -> Any:
    """The ``--cluster`` engine with its options, or None (then no engine module is imported)."""
    if args.address is not None and args.cluster != "ray":
        raise UsageError("--address needs --cluster ray")
    if args.cluster is None:
        return None
    from hpo.cluster import make_engine

    return make_engine(args.cluster, vars(args))  # each engine reads its own flags


def _print_sampler_warnings(spec: Any) -> None:
    from rich.markup import escape

    from hpo._components import sampler_warnings

    for line in sampler_warnings(spec.sampler, spec.pruner, spec.study.storage):
        err_console.print(f"[yellow]warning:[/yellow] {escape(line)}")


def _open(spec: Any, create: bool = True) -> Any:
    from hpo._study import open_study

    return open_study(spec, create=create)


def _print_summary(spec: Any, study: Any) -> None:
    from hpo._study import lost_trials
    from hpo._summary import best_table, best_trials, counts_table, duration

    trials = study.get_trials(deepcopy=False)
    console.print(counts_table(trials, lost_trials(study)))
    best = best_trials(study)
    if best:
        console.print(best_table(best, spec.study.metrics))
    else:
        console.print("no complete trial yet")
    wall, busy = duration(trials)
    console.print(f"wall time {_fmt_td(wall)}, trial time {_fmt_td(busy)}")


def _fmt_td(td: Any) -> str:
    seconds = int(td.total_seconds())
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def _study_args(spec: Any, args: argparse.Namespace) -> str:
    """The space file and the flags that chose this study (``--set``, ``--storage``), shell-quoted,
    for the commands the summary suggests: without them ``hpo best FILE`` would read another study."""
    import shlex

    from hpo._storage import redact

    words = [spec.source]
    for assignment in getattr(args, "set", None) or ():
        words += ["--set", assignment]
    if getattr(args, "storage", None):
        words += ["--storage", redact(args.storage)]
    return " ".join(shlex.quote(w) for w in words)


def _print_paths(spec: Any, study: Any, args: argparse.Namespace) -> None:
    from hpo._storage import describe_storage
    from hpo._summary import best_trials
    from hpo.tracking import default_tracking_uri

    chosen = _study_args(spec, args)
    lines = [f"study storage: {describe_storage(spec)}", f"trial folders: {spec.study_dir / 'trials'}"]
    if best_trials(study):
        lines += [f"best trial: hpo best {chosen}", f"export it for retraining: hpo export {chosen} -o best.yaml"]
    errors = [spec.study_dir / "trials" / f"{t.number:05d}" / "error.txt" for t in study.get_trials(deepcopy=False)
              if t.state.name == "FAIL"]
    if errors := [e for e in errors if e.is_file()]:  # the objective raised: its traceback is kept there
        lines.append(f"why trials failed (traceback): {errors[-1]}" + (f" and {len(errors) - 1} more" if errors[1:]
                                                                         else ""))
    if spec.mlflow.enabled:
        lines.append(f"MLflow: {spec.mlflow.tracking_uri or default_tracking_uri()} "
                     f"(experiment {spec.experiment!r}; browse with `hpo ui {chosen}`)")
    report = spec.study_dir / "report.html"
    if report.exists():
        lines.append(f"dashboard: {report}")
    for line in lines:  # paths and names are the user's text, never markup
        console.print(line, markup=False, soft_wrap=True)


@command("status")
def cmd_status(args: argparse.Namespace) -> int:
    from hpo import _keys as keys
    from hpo._study import orphaned_trials, will_be_retried
    from hpo._summary import workers

    spec = load(args)
    study = _open(spec, create=False)  # read-only: status repairs nothing (the next `hpo run` does)
    orphans = orphaned_trials(study)
    planned = study.user_attrs.get(keys.STUDY_N_TRIALS, spec.study.n_trials)  # the latest run's cap
    console.print(f"study {spec.study.name!r} ({planned} trials planned)")
    _print_summary(spec, study)
    if retried := [t.number for t in orphans if will_be_retried(t, spec)]:
        console.print(f"trials {retried} lost: their worker died; re-queued by the next `hpo run {spec.source}`",
                      markup=False)
    if replaced := [t.number for t in orphans if not will_be_retried(t, spec)]:
        console.print(f"trials {replaced} lost: their worker died; not retried (study.max_retries is "
                      f"{spec.study.max_retries}): the next `hpo run {spec.source}` fails them and samples new "
                      "trials in their places", markup=False)
    seen = workers(study.get_trials(deepcopy=False))
    console.print(f"workers seen: {len(seen)}" + (f" ({', '.join(seen)})" if seen else ""))
    from hpo.cluster._slurm import describe_jobs

    if jobs := describe_jobs(study):
        console.print(jobs, markup=False)
    return 0


@command("best")
def cmd_best(args: argparse.Namespace) -> int:
    import yaml

    from hpo._export import best_configs

    spec = load(args)
    configs = best_configs(_open(spec, create=False), spec)
    if not configs:
        raise UsageError(f"study {spec.study.name!r} has no complete trial yet; run `hpo run {spec.source}`")
    docs = [c.to_dict() for c in configs]
    # Unwrapped and not read as markup: the output is YAML that scripts parse (long absolute paths).
    console.print(yaml.safe_dump(docs[0] if len(docs) == 1 else docs, sort_keys=False), end="", soft_wrap=True,
                  markup=False)
    return 0


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    from hpo._export import export_best

    spec = load(args)
    path = export_best(spec, args.output, top=args.top)
    console.print(f"wrote {path}")
    return 0


@command("train")
def cmd_train(args: argparse.Namespace) -> int:
    from hpo._train import train_from_export

    result = train_from_export(args.config, output=args.output, tracking_uri=args.tracking_uri, console=console,
                               quantize=args.quantize)
    return 0 if result is not None else 1


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    spec = load(args)
    path = _write_report(spec, _open(spec, create=False), args.output)
    console.print(f"wrote {path}")
    return 0


def _write_report(spec: Any, study: Any, output: str | None, quiet: bool = False) -> Path | None:
    from hpo._report import write_report

    try:
        return write_report(spec, study, Path(output) if output else None)
    except Exception as exc:  # noqa: BLE001 - a failed dashboard must not fail a finished study
        if not quiet:
            raise
        err_console.print(f"[yellow]dashboard not written: {type(exc).__name__}: {exc}[/yellow]")
        return None


@command("ui")
def cmd_ui(args: argparse.Namespace) -> int:
    from hpo.tracking import default_artifacts_dir, default_tracking_uri, serve_ui
    from hpo.tracking._mlflow import sqlite_path

    experiment = None
    uri = args.tracking_uri
    if args.space:
        spec = load(args)
        if not spec.mlflow.enabled and not uri:
            raise UsageError(f"study {spec.study.name!r} logs nothing to MLflow (mlflow.enabled: false in "
                             f"{spec.source}); `hpo report {spec.source}` writes its dashboard")
        uri = uri or spec.mlflow.tracking_uri  # a located study's default store is the one beside it
        experiment = spec.experiment
    artifacts = None if uri else default_artifacts_dir()
    uri = uri or default_tracking_uri()
    db = sqlite_path(uri)
    if db is not None and not db.expanduser().is_file():  # a reader creates no store (MLflow would)
        raise UsageError(f"no MLflow store at {db}: run a study first (`hpo run SPACE`), or give the space file "
                         "or --tracking-uri of one")
    return serve_ui(uri, host=args.host, port=args.port, experiment=experiment, artifacts_dir=artifacts)


@command("proxy")
def cmd_proxy(args: argparse.Namespace) -> int:
    import signal
    import threading

    from hpo._proxy import serve
    from hpo._storage import redact

    if "://" not in args.storage or args.storage.startswith("grpc://"):
        raise UsageError(f"--storage: expected a database URL such as postgresql://user@host/db, got {args.storage!r}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # a clean stop: in-flight calls finish

    def announce() -> None:
        console.print(f"hpo proxy for {redact(args.storage)} listening on {args.host}:{args.port}; workers use "
                      f"--storage grpc://HOST:{args.port}", markup=False)

    try:
        serve(args.storage, args.host, args.port, args.threads, on_ready=announce, stop=stop)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        # what it means for the command: validate's answer is the error itself; a reader read nothing
        suffix = "; nothing was run" if args.command in ("run", "train") else ""
        return _fail(f"{exc}{suffix}", exc.exit_code)
    except HpoError as exc:
        return _fail(str(exc), exc.exit_code)
    except OSError as exc:
        # A disk that filled during the run: the store was cut back, rerun to resume (exit 1).
        full = disk_full_error(exc)
        if full is not None:
            return _fail(str(full), full.exit_code)
        # The user's folders and disks (read-only, no permission, name too long): their problem to
        # fix, so one line naming the path; any other OSError is a bug and keeps its traceback.
        message = os_error_message(exc)
        if message is None:
            raise
        if hasattr(args, "output") and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            message += "; or write the output elsewhere with -o"  # report writes into the study folder
        return _fail(message, 2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


def entry_point() -> int:
    """``hpo`` as a process (the console script, ``python -m hpo``): :func:`main`, then a fast exit.

    An ``hpo run`` that loaded MLflow, SQLAlchemy and pandas spends ~0.8 s at interpreter exit in
    the cyclic garbage collector walking objects that are about to vanish anyway; freezing them
    (``gc.freeze``) skips that walk. atexit handlers still run. Only here, not in :func:`main`,
    which tests and other programs call in a process that goes on.
    """
    import gc

    code = main()
    gc.freeze()
    return code


def _fail(message: str, code: int) -> int:
    """Prints ``error: message`` as one line (user text is never read as Rich markup) and returns ``code``."""
    from rich.text import Text

    err_console.print(Text.assemble(("error:", "red"), " ", one_line(message)), soft_wrap=True)
    return code

if __name__ == "__main__":
    sys.exit(main())
