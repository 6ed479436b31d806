"""A storage URL hpo cannot open is one line and exit 2 at `hpo run`, before any trial: one whose
Python driver is not installed. (An unknown database kind is refused at validation:
tests/hpo/test_spec.py.)"""

from __future__ import annotations

import pytest
from _helpers import base_space

URLS = {
    # SQLAlchemy knows MySQL, but its default driver (mysqlclient) is not installed here
    "driver-missing": ("mysql://u@localhost/db", "its database driver is not installed (No module named 'MySQLdb')"),
}


@pytest.mark.parametrize("case", sorted(URLS))
def test_a_storage_url_that_cannot_be_opened_is_one_line_exit_2(write_space, cli, case):
    url, fragment = URLS[case]
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 1, "storage": url}))
    code, _, err = cli("run", path, "--no-report")
    assert code == 2, err
    assert f"cannot open the study storage {url}" in err and fragment in err and "Traceback" not in err, err


@pytest.mark.parametrize("command", ["status", "best", "export"])
def test_readers_of_a_storage_whose_driver_is_missing_say_so_in_one_line(write_space, cli, command):
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 1,
                                         "storage": "mysql://u@localhost/db"}))
    code, _, err = cli(command, path)
    assert code == 2, err
    assert "its database driver is not installed (No module named 'MySQLdb')" in err and "Traceback" not in err, err
