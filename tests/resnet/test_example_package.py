"""The example user package ``examples/my_models`` is plain Lightning code that trains as is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def my_models(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import my_models

    return my_models


def test_module_trains_one_epoch_under_plain_lightning(my_models, tmp_path):
    import lightning as L

    torch.manual_seed(0)
    module = my_models.SmallCNN(width=8, dropout=0.0)
    data = my_models.DigitsDataModule(batch_size=64)
    # The module leaves the optimiser to its trainer (hpo); plain Lightning needs one.
    module.configure_optimizers = lambda: torch.optim.AdamW(module.parameters(), lr=3e-3)
    seen: list[tuple[int, ...]] = []
    module.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)) if m.training else None)
    before = module.classifier.weight.detach().clone()
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    assert len(seen) == 1438 // 64 and set(seen) == {(64, 1, 8, 8)}  # every full training batch of digits
    assert not torch.equal(before, module.classifier.weight)
    metrics = trainer.callback_metrics
    assert {"val_loss", "val_acc", "train_loss"} <= set(metrics)
    assert float(metrics["val_acc"]) > 0.3  # one epoch from chance (0.1)


def test_module_has_no_optimiser_of_its_own_and_takes_width_and_dropout(my_models):
    import lightning as L

    module = my_models.SmallCNN(width=4, dropout=0.5)
    assert isinstance(module, L.LightningModule)
    assert "configure_optimizers" not in type(module).__dict__
    assert module.hparams["width"] == 4 and module.hparams["dropout"] == 0.5
    assert module.features[0].out_channels == 4 and module.dropout.p == 0.5
    assert module(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
