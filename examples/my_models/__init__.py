"""An example of your own model package for hpo: a LightningModule and a LightningDataModule.

Written as plain Lightning code (``import lightning as L``), with nothing hpo-specific: the module
has no ``configure_optimizers`` (hpo builds the optimiser and LR schedule from the trial's
``optimizer``/``lr``/``lr_schedule`` knobs), its ``forward(x)`` returns logits, and its
validation step logs ``val_loss`` and ``val_acc``. The data module builds scikit-learn's 8x8
digits (bundled with scikit-learn: nothing is downloaded).

Point a space file at them::

    objective: {module: my_models:SmallCNN, data: my_models:DigitsDataModule}
"""

from .data import DigitsDataModule
from .model import SmallCNN

__all__ = ["DigitsDataModule", "SmallCNN"]
