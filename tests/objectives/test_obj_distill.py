"""Distillation: the teacher changes the student; a teacher mapping is trained once per study."""

from __future__ import annotations

import optuna
import pytest
import torch

import objectives
from objectives import _teacher


def _weights(ctx):
    return torch.load(ctx.workdir / "best.pt", weights_only=True)["state_dict"]


@pytest.mark.slow  # ~20 s
def test_teacher_mapping_trained_once_reused_and_changes_the_student(make_ctx, tiny, monkeypatch):
    trained = []
    real = _teacher.train_teacher

    def counting(kind, cfg):
        trained.append(cfg)
        return real(kind, cfg)

    monkeypatch.setattr(_teacher, "train_teacher", counting)
    study = optuna.create_study(direction="maximize")
    teacher = {"width": 16, "max_epochs": 2}
    student = dict(tiny, max_epochs=1, seed=1, teacher=teacher, distill_alpha=0.9, distill_temperature=2.0)

    ctx1 = make_ctx(student, study=study)
    with_teacher = objectives.image_classifier(student, ctx1)
    assert ctx1.trial.user_attrs["teacher_cache"] == "trained"
    cached = ctx1.trial.user_attrs["teacher_checkpoint"]
    assert cached.startswith(str(ctx1.study_dir / "teachers"))
    study.tell(ctx1.trial, with_teacher["val_acc"])

    ctx2 = make_ctx(student, study=study)
    again = objectives.image_classifier(student, ctx2)
    assert ctx2.trial.user_attrs["teacher_cache"] == "loaded"
    assert ctx2.trial.user_attrs["teacher_checkpoint"] == cached
    assert len(trained) == 1 and trained[0].width == 16 and trained[0].dataset == "digits"
    assert again["val_loss"] == pytest.approx(with_teacher["val_loss"], rel=1e-5)

    plain = {k: v for k, v in student.items() if k != "teacher"}
    ctx3 = make_ctx(plain, study=study)
    without = objectives.image_classifier(plain, ctx3)
    assert without["val_loss"] != pytest.approx(with_teacher["val_loss"], rel=1e-4)
    w_t, w_0 = _weights(ctx1), _weights(ctx3)
    assert not torch.allclose(w_t["model.classifier.weight"], w_0["model.classifier.weight"])

    # The cached file is itself a valid `teacher:` checkpoint path (weights_only loading).
    path_params = dict(student, teacher=cached)
    by_path = objectives.image_classifier(path_params, make_ctx(path_params, study=study))
    assert by_path["val_loss"] == pytest.approx(with_teacher["val_loss"], rel=1e-5)


def test_teacher_checkpoint_path_errors(make_ctx, tiny, tmp_path):
    params = dict(tiny, teacher=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="teacher: checkpoint .*missing.pt does not exist"):
        objectives.image_classifier(params, make_ctx(params))
    torch.save({"state_dict": {"nope": torch.zeros(1)}, "model": {"input_shape": [1, 8, 8], "num_classes": 10}},
               tmp_path / "bad.pt")
    params = dict(tiny, teacher=str(tmp_path / "bad.pt"))
    with pytest.raises(ValueError, match="does not match the architecture"):
        objectives.image_classifier(params, make_ctx(params))
