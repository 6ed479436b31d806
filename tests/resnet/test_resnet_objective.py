"""``resnet_classifier``: its knobs, their checks at ``hpo validate``, and a real training run."""

from __future__ import annotations

import pytest
import torch

import objectives
from objectives._config import TrainConfig
from objectives._resnet import ResNet


@pytest.mark.parametrize(
    "objective, params, message",
    [
        ("resnet_classifier", {"depth": 21}, r"depth: expected 6n\+2 .* got 21"),
        ("image_classifier", {"arch": "resnet"}, r"depth: expected 6n\+2 .* got 2"),
        ("resnet_classifier", {"arch": "convnet"}, r"arch: expected resnet for resnet_classifier, got 'convnet'"),
        ("sequence_classifier", {"arch": "resnet", "depth": 20}, r"arch: expected convnet for sequence_classifier"),
        ("image_classifier", {"shortcut": "B"}, r"shortcut: only read with arch: resnet"),
        ("resnet_classifier", {"shortcut": "C"}, r"shortcut: expected one of A, B, got 'C'"),
        ("resnet_classifier", {"image_size": 32}, r"image_size: only read with an imagefolder:PATH dataset"),
        ("sequence_classifier", {"dataset": "imagefolder:x"}, r"dataset: imagefolder:PATH holds images"),
        ("image_classifier", {"dataset": "imagefolder:"}, r"dataset: expected imagefolder:PATH with a path"),
        ("image_classifier", {"arch": "resnet50"}, r"arch: expected one of convnet, resnet, got 'resnet50'"),
    ],
)
def test_bad_knobs_are_refused(objective, params, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.for_objective(objective, params)


def test_resnet_classifier_defaults_are_resnet20_width16():
    cfg = TrainConfig.for_objective("resnet_classifier", {"dataset": "digits"})
    assert (cfg.arch, cfg.depth, cfg.width, cfg.shortcut) == ("resnet", 20, 16, "A")
    assert TrainConfig.for_objective("resnet_classifier", {"depth": 56, "width": 8}).depth == 56
    assert TrainConfig().arch == "convnet"  # the other built-ins are unchanged


def test_validate_refuses_a_bad_resnet_depth_with_one_line(cli, write_space):
    from _helpers import base_space

    doc = base_space(
        study={"direction": "maximize", "metric": "val_acc", "n_trials": 1},
        objective={"name": "resnet_classifier", "fixed": {"dataset": "digits"}},
        space={"depth": {"type": "categorical", "choices": [20, 33]}},
    )
    code, _, err = cli("validate", write_space(doc))
    assert code == 2
    first = err.strip().splitlines()[0]
    assert "space.yaml: space.depth: expected 6n+2" in first and "got 33" in first
    assert "Traceback" not in err
    doc["space"]["depth"]["choices"] = [20, 32]
    code, _, err = cli("validate", write_space(doc))
    assert code == 0, err


def test_resnet_classifier_trains_a_resnet_on_an_image_folder(image_folder, make_ctx):
    root = image_folder(classes=("a", "b", "c"), per_class=24, size=(8, 8))
    params = {"dataset": f"imagefolder:{root}", "image_size": 6, "depth": 8, "width": 4, "max_epochs": 4,
              "batch_size": 16, "lr": 0.01, "val_fraction": 0.25, "threads": 1}
    seen: list[tuple[int, tuple[int, ...]]] = []
    original = ResNet.forward

    def spy(self, x):  # the network that actually sees the training batches
        if self.training:
            seen.append((self.hparams["depth"], tuple(x.shape[1:])))
        return original(self, x)

    ctx = make_ctx(params)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ResNet, "forward", spy)
        result = objectives.resnet_classifier(params, ctx)
    assert seen and set(seen) == {(8, (3, 6, 6))}  # resized from 8x8 by the image_size knob
    assert len(seen) == 4 * (54 // 16)  # 4 epochs of full training batches (54 training images)
    assert result["val_acc"] > 0.6  # chance is 1/3
    ckpt = torch.load(ctx.workdir / "best.pt", weights_only=True)
    assert ckpt["model"]["arch"] == "resnet" and ckpt["model"]["depth"] == 8
