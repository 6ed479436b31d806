"""The CIFAR ResNet (6n+2) network: size, shapes, shortcuts, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from objectives._config import TrainConfig
from objectives._models import build_model, build_network
from objectives._resnet import BasicBlock, ResNet


def _n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("depth, millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85)])
def test_parameter_counts_match_the_paper(depth, millions):
    # He et al. 2016, Table 6 (option A shortcuts, width 16, 10 classes).
    assert round(_n_params(ResNet((3, 32, 32), 10, depth=depth, width=16, shortcut="A")) / 1e6, 2) == millions


def test_resnet20_exact_size_and_option_b_adds_projections():
    a = ResNet((3, 32, 32), 10, depth=20, width=16, shortcut="A")
    b = ResNet((3, 32, 32), 10, depth=20, width=16, shortcut="B")
    assert _n_params(a) == 269_722
    # Two 1x1 projections (16->32, 32->64) with their BatchNorms: 512+64 + 2048+128.
    assert _n_params(b) - _n_params(a) == 512 + 64 + 2048 + 128


def test_three_stages_of_n_blocks_with_doubling_widths_and_halving_size():
    net = ResNet((3, 32, 32), 7, depth=32, width=8).eval()
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 15  # n = 5 per stage
    shapes = []
    hooks = [blk.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for blk in blocks[::5]]
    out = net(torch.randn(4, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert out.shape == (4, 7)
    assert shapes == [(8, 32, 32), (16, 16, 16), (32, 8, 8)]


def test_small_and_grayscale_inputs():
    net = ResNet((1, 8, 8), 10, depth=8, width=4)
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError, match="a ResNet needs images"):
        ResNet((1, 64), 10)


def test_config_builds_the_resnet_and_checkpoint_hparams_rebuild_it():
    cfg = TrainConfig(arch="resnet", depth=14, width=4, shortcut="B", dropout=0.1)
    net = build_network((3, 16, 16), 5, cfg)
    assert isinstance(net, ResNet) and net.hparams["depth"] == 14 and net.hparams["shortcut"] == "B"
    again = build_model(dict(net.hparams))
    assert isinstance(again, ResNet)
    again.load_state_dict(net.state_dict())  # same architecture, key for key


def test_a_bare_state_dict_teacher_of_a_resnet_student_loads_as_a_resnet(tmp_path):
    import numpy as np

    from objectives._data import ArrayData
    from objectives._teacher import resolve_teacher

    student = TrainConfig(arch="resnet", depth=8, width=4, shortcut="B")
    teacher = ResNet((3, 8, 8), 3, depth=8, width=4, shortcut="B")
    path = tmp_path / "teacher.pt"
    torch.save(teacher.state_dict(), path)  # no architecture recorded: the student's is assumed
    arrays = ArrayData(np.zeros((4, 3, 8, 8), np.float32), np.zeros(4, np.int64),
                       np.zeros((2, 3, 8, 8), np.float32), np.zeros(2, np.int64), 3)
    loaded = resolve_teacher(str(path), student, "image", None, arrays)
    assert isinstance(loaded, ResNet) and loaded.hparams["shortcut"] == "B"
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(loaded(x), teacher.eval()(x))
