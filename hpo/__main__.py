import sys

from hpo.cli import entry_point

sys.exit(entry_point())
