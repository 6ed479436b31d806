"""Multi-process DDP for one trial, without re-running the driver's command line.

The process running the trial is rank 0. It pickles the module and data to the trial's folder,
starts ranks ``1..N-1`` as ``python -m objectives._ddp <spec.json>`` with ``MASTER_ADDR``,
``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and ``NODE_RANK`` set, and sets the same
variables in its own environment for the duration of the fit. Lightning then sees an externally
launched cluster (``LightningEnvironment``) in every process and launches nothing itself; only
rank 0 holds the trial, so there is exactly one Optuna trial whatever the number of ranks. The
pruning decision is taken on rank 0 and broadcast (``PruningCallback``); every rank stops at the
same epoch. The process group is destroyed after the fit so the next trial can create its own.

CPU: gloo, any number of processes. CUDA: NCCL, one process per visible GPU (``devices`` must not
exceed ``torch.cuda.device_count()``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from hpo._keys import DDP_RANKS
from objectives._config import TrainConfig
from objectives._trainer import FitRequest, fit_local


_ENV_KEYS = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK")
CHILD_EXIT_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _destroy_process_group() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()


def _module_files(*objs: Any) -> dict[str, str]:
    """Source files of the modules defining ``objs``' classes, for children that cannot import
    them by name (objectives loaded from a file path)."""
    out = {}
    for obj in objs:
        name = type(obj).__module__
        mod = sys.modules.get(name)
        file = getattr(mod, "__file__", None)
        if file and name not in ("builtins",):
            out[name] = file
    return out


def fit_ddp(request: FitRequest) -> dict[str, float]:
    """Rank 0's side of a ``devices > 1`` fit (see the module docstring)."""
    module, data, cfg, ctx = request.module, request.data, request.cfg, request.ctx
    world = int(cfg.devices)
    if torch.cuda.is_available() and world > torch.cuda.device_count():
        raise ValueError(f"devices: {world} requested but only {torch.cuda.device_count()} GPUs are visible")
    base = Path(ctx.workdir) if ctx is not None else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="ddp-", dir=base))
    payload = run_dir / "payload.pt"
    torch.save({"module": module, "data": data, "callbacks": request.callbacks}, payload)
    port = free_port()
    repo_root = str(Path(__file__).resolve().parent.parent)
    common = {
        "payload": str(payload),
        "config": cfg.to_dict(),
        "monitor": request.monitor,
        "mode": request.mode,
        "world_size": world,
        "sys_path": [p for p in sys.path if p],
        "module_files": _module_files(module, data),
    }
    procs: list[tuple[int, subprocess.Popen, Path]] = []
    env_base = dict(os.environ)
    env_base["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, env_base.get("PYTHONPATH")]))
    env_base.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                     "NODE_RANK": "0"})
    for rank in range(1, world):
        spec = dict(common, rank=rank, result=str(run_dir / f"rank{rank}.json"))
        spec_path = run_dir / f"rank{rank}.spec.json"
        spec_path.write_text(json.dumps(spec, default=str))
        env = dict(env_base, RANK=str(rank), LOCAL_RANK=str(rank))
        logf = open(run_dir / f"rank{rank}.log", "wb")  # noqa: SIM115 - closed after the child exits
        proc = subprocess.Popen(
            [sys.executable, "-m", "objectives._ddp", str(spec_path)],
            env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=os.getcwd(),
        )
        logf.close()
        procs.append((rank, proc, run_dir / f"rank{rank}.json"))
    rank0_env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                 "RANK": "0", "LOCAL_RANK": "0", "NODE_RANK": "0"}
    ok = False
    try:
        with _environ(rank0_env):
            result = fit_local(request, world_size=world)
        ok = True
        return result
    finally:
        # Closing rank 0's sockets unblocks children stuck in a collective if rank 0 failed.
        _destroy_process_group()
        ranks = _join(procs, timeout=CHILD_EXIT_TIMEOUT)
        if ctx is not None:
            with contextlib.suppress(Exception):
                ctx.set_user_attr(DDP_RANKS, ranks)
        failed = [r for r in ranks if r.get("status") == "failed"]
        if ok and failed:
            raise RuntimeError(f"DDP rank {failed[0]['rank']} failed: {failed[0].get('error', '')[-2000:]}")
        if ok or not failed:
            shutil.rmtree(run_dir, ignore_errors=True)


def _join(procs: list[tuple[int, subprocess.Popen, Path]], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    out = []
    for rank, proc, result in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        info: dict[str, Any] = {"rank": rank, "pid": proc.pid, "returncode": proc.returncode}
        try:
            info.update(json.loads(result.read_text()))
        except (OSError, ValueError):
            info.setdefault("status", "failed")
            log = result.with_suffix(".log")
            with contextlib.suppress(OSError):
                info["error"] = log.read_text(errors="replace")[-4000:]
        out.append(info)
    return out


class _RankNull:
    """Stands in for the trial context on ranks > 0 (they never report)."""


def _child_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    for p in reversed(spec.get("sys_path", [])):
        if p not in sys.path:
            sys.path.insert(0, p)
    for name, file in spec.get("module_files", {}).items():
        if name in sys.modules:
            continue
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None and os.path.exists(file):
            mspec = importlib.util.spec_from_file_location(name, file)
            mod = importlib.util.module_from_spec(mspec)
            sys.modules[name] = mod
            mspec.loader.exec_module(mod)
    import optuna

    result: dict[str, Any] = {"rank": spec["rank"], "status": "failed", "epoch": None}
    code = 1
    trainer_epoch = None
    try:
        payload = torch.load(spec["payload"], map_location="cpu", weights_only=False)
        cfg = TrainConfig(**spec["config"])
        request = FitRequest(payload["module"], payload["data"], cfg, None, spec["monitor"], spec["mode"],
                             callbacks=payload.get("callbacks") or [])
        fit_local(request, world_size=spec["world_size"])
        trainer_epoch = payload["module"].trainer.current_epoch if payload["module"]._trainer else None
        result.update(status="complete", epoch=trainer_epoch)
        code = 0
    except optuna.TrialPruned as exc:
        msg = str(exc)
        epoch = int(msg.rsplit(" ", 1)[-1]) if msg.rsplit(" ", 1)[-1].isdigit() else None
        result.update(status="pruned", epoch=epoch)
        code = 0
    except BaseException:
        result.update(error=traceback.format_exc())
    finally:
        _destroy_process_group()
        Path(spec["result"]).write_text(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
