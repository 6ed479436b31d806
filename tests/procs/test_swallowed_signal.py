"""A SIGTERM whose Interrupted was swallowed (it landed in a weakref callback or a __del__, where
Python prints "Exception ignored in ..." and goes on) still stops the trial and the worker."""

import os
import signal

import pytest

from hpo._signals import Interrupted, install_signal_handlers, raise_if_signalled, restore_signal_handlers


@pytest.fixture
def handlers():
    previous = install_signal_handlers()
    yield
    restore_signal_handlers(previous)
    raise_if_signalled()  # forgotten: the tests after these are not interrupted


def swallow_a_sigterm():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a bytecode boundary: the handler runs here
    except Interrupted:
        pass  # what a weakref callback or __del__ does with it


def test_a_swallowed_sigterm_is_raised_again_at_the_next_check(handlers):
    raise_if_signalled()  # nothing received yet: goes on
    swallow_a_sigterm()
    with pytest.raises(Interrupted) as info:
        raise_if_signalled()
    assert info.value.exit_code == 143


def test_a_trial_reporting_after_a_swallowed_sigterm_is_interrupted(handlers, tmp_path):
    import optuna

    from hpo._context import TrialContext
    from hpo.tracking import Tracker

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study().ask()
    ctx = TrialContext(trial, {}, {}, ("loss",), 0, tmp_path, tmp_path, Tracker())
    ctx.report(1.0, 0)
    swallow_a_sigterm()
    with pytest.raises(Interrupted):
        ctx.report(0.5, 1)


def test_a_new_run_in_the_same_process_starts_clean(handlers):
    swallow_a_sigterm()
    install_signal_handlers()  # the next run (tests and programs may run several)
    raise_if_signalled()


# Code that Python reports as the import system's own (as its module-lock clean-up is), signalling
# itself in the middle: the handler must not raise there.
IMPORT_MACHINERY = compile(
    "import os, signal\n"
    "os.kill(os.getpid(), signal.SIGTERM)\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a bytecode boundary: the handler runs here\n"
    "finished.append(True)  # an exception above would leave a lock held here\n",
    "<frozen importlib._bootstrap>", "exec")


def test_a_signal_in_the_import_system_is_raised_once_it_has_left_it(handlers):
    """A SIGTERM landing in importlib's own code left Python's import lock held, and the MLflow
    writer thread blocked on its next import: `hpo run` hung after SIGTERM instead of exiting."""
    import time

    finished: list[bool] = []
    with pytest.raises(Interrupted) as info:
        exec(IMPORT_MACHINERY, {"finished": finished})
        assert finished == [True]  # the import system's code ran to its end
        time.sleep(5)  # the signal comes again once it has left the import system
    assert finished == [True] and info.value.exit_code == 143


@pytest.mark.parametrize("where", ["weakref callback", "__del__"])
def test_a_signal_python_drops_in_a_weakref_callback_or_del_is_raised_again(handlers, where):
    """Python drops ("Exception ignored in ...") an exception raised in a weakref callback or a
    ``__del__``, which run wherever a collection happens: a trial that reports no steps (or a
    Ray task stopped by its driver) ran on after such a SIGTERM. It now comes back at once."""
    import time
    import weakref

    class Thing:
        def __del__(self) -> None:
            if where == "__del__":
                swallow_for_real()

    def swallow_for_real(*_: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the handler runs here; Python drops its exception

    thing = Thing()
    keep = weakref.ref(thing, swallow_for_real if where == "weakref callback" else None)
    with pytest.raises(Interrupted) as info:
        del thing  # the callback runs now
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.01)
    assert info.value.exit_code == 143 and keep() is None
