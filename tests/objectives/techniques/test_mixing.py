import pytest
import torch

from objectives.techniques import cutmix, mixup, one_hot

N = 8


def _identity_targets(n: int = N) -> torch.Tensor:
    # Sample i has its own class i, so y'[i, j] is exactly the weight of sample j in x'[i].
    return one_hot(torch.arange(n), n, torch.float64)


def test_one_hot():
    assert torch.equal(one_hot(torch.tensor([2, 0]), 3), torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))


def test_mixup_mixes_inputs_and_targets_consistently():
    x = torch.randn(N, 3, 4, 5, dtype=torch.float64)
    y = _identity_targets()
    for seed in range(5):
        xm, ym = mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(seed))
        # x'[i] = sum_j y'[i, j] x[j] holds only if inputs and targets share lam and perm.
        assert torch.allclose(xm.flatten(1), ym @ x.flatten(1))
        assert torch.allclose(ym.sum(1), torch.ones(N, dtype=torch.float64))
        perm = ym.clone().fill_diagonal_(0).argmax(1)
        moved = ym.clone().fill_diagonal_(0).sum(1) > 0
        assert moved.any() and len(set(perm[moved].tolist())) == int(moved.sum())  # a permutation
        lam = ym.diagonal()[moved]
        assert torch.allclose(lam, lam[0].expand_as(lam)) and 0 < lam[0] < 1  # one lam per batch
        assert ((ym > 0).sum(1) <= 2).all()


def test_mixup_deterministic_with_generator_and_alpha_zero_identity():
    x, y = torch.randn(N, 2, 6), _identity_targets()
    a = mixup(x, y, 1.0, torch.Generator().manual_seed(3))
    b = mixup(x, y, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    xm, ym = mixup(x, y, 0.0)
    assert xm is x and ym is y


def test_mixup_rejects_index_targets():
    with pytest.raises(ValueError):
        mixup(torch.randn(4, 3), torch.arange(4), 1.0)


def _check_cutmix(spatial: tuple[int, ...], seeds: range) -> int:
    """Return how many seeds produced a non-trivial paste; assert exactness for all."""
    c = 2
    numel = c * torch.Size(spatial).numel()
    # Value = 1000 * sample + position: tells where every output element came from.
    x = (torch.arange(N).view(N, 1) * 1000 + torch.arange(numel)).double().view(N, c, *spatial)
    y = _identity_targets()
    nontrivial = 0
    for seed in seeds:
        xm, ym = cutmix(x, y, alpha=1.0, generator=torch.Generator().manual_seed(seed))
        assert xm.shape == x.shape
        source = torch.div(xm, 1000, rounding_mode="floor").long()
        assert torch.equal(xm - 1000 * source, x - 1000 * torch.arange(N).view(N, *[1] * (x.ndim - 1)))
        perm = ym.clone().fill_diagonal_(0).argmax(1)
        moved = ym.clone().fill_diagonal_(0).sum(1) > 0
        perm = torch.where(moved, perm, torch.arange(N))
        assert sorted(perm.tolist()) == list(range(N))
        region = source[moved] != torch.arange(N)[moved].view(-1, *[1] * (x.ndim - 1))
        box = region[0] if moved.any() else torch.zeros(c, *spatial, dtype=torch.bool)
        assert (region == box).all()  # one region for the whole batch...
        assert (box == box[0]).all()  # ...spanning all channels
        box = box[0]
        # ...that is an axis-aligned box / segment.
        ranges = [box.movedim(d, 0).reshape(box.shape[d], -1).any(1) for d in range(box.ndim)]
        outer = ranges[0]
        for r in ranges[1:]:
            outer = outer.unsqueeze(-1) & r
        assert torch.equal(box, outer)
        for r in ranges:
            idx = r.nonzero().flatten()
            assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx)
        # Pasted region equals the partner's same region; the rest is untouched.
        expected = torch.where(box, x[perm], x)
        assert torch.equal(xm, expected)
        area = box.double().mean()
        expected_y = (1 - area) * y + area * y[perm]
        assert torch.allclose(ym, expected_y)
        assert torch.allclose(ym.sum(1), torch.ones(N, dtype=torch.float64))
        nontrivial += bool(0 < area < 1 and moved.any())
    return nontrivial


def test_cutmix_2d():
    assert _check_cutmix((8, 10), range(20)) >= 10


def test_cutmix_1d():
    assert _check_cutmix((32,), range(20)) >= 10


def test_cutmix_alpha_zero_identity_and_shape_check():
    x, y = torch.randn(N, 1, 5), _identity_targets()
    xm, ym = cutmix(x, y, 0.0)
    assert xm is x and ym is y
    with pytest.raises(ValueError):
        cutmix(torch.randn(N, 5), y, 1.0)
