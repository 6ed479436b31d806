import pytest
import torch
import torch.nn.functional as F

from objectives.techniques import gaussian_noise, random_crop, random_hflip


@pytest.mark.parametrize("shape", [(16, 3, 5, 6), (16, 2, 7)])
def test_hflip_all_or_none(shape):
    x = torch.randn(shape)
    assert torch.equal(random_hflip(x, 1.0), x.flip(-1))
    assert random_hflip(x, 0.0) is x


def test_hflip_half_per_sample():
    n = 4000
    x = torch.arange(4.0).expand(n, 1, 1, 4)
    out = random_hflip(x, 0.5, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert (flipped ^ kept).all()  # every sample is whole: either flipped or not
    assert 0.46 < flipped.float().mean() < 0.54
    with pytest.raises(ValueError):
        random_hflip(x, 1.5)


@pytest.mark.parametrize("spatial", [(6, 7), (9,)])
def test_crop_is_shifted_window_of_padded_input(spatial):
    n, c, pad = 64, 2, 2
    x = torch.arange(1.0, 1 + n * c * torch.Size(spatial).numel()).view(n, c, *spatial)  # all distinct, nonzero
    out = random_crop(x, pad, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = F.pad(x, (pad, pad) * len(spatial))
    grid = torch.cartesian_prod(*[torch.arange(2 * pad + 1)] * len(spatial)).view(-1, len(spatial))
    shifts = []
    for i in range(n):
        matches = [
            tuple(o.tolist())
            for o in grid
            if torch.equal(out[i], padded[i][(slice(None), *[slice(a, a + s) for a, s in zip(o.tolist(), spatial)])])
        ]
        assert len(matches) == 1, f"sample {i} is not a window of its padded input"
        shifts.append(matches[0])
    assert len(set(shifts)) > (2 * pad + 1) ** len(spatial) // 2  # independent per sample
    assert (out == 0).any()  # some windows reach into the zero padding


def test_crop_identity_and_generator_determinism():
    x = torch.randn(4, 3, 8, 8)
    assert random_crop(x, 0) is x
    a = random_crop(x, 3, torch.Generator().manual_seed(7))
    b = random_crop(x, 3, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_gaussian_noise_std():
    x = torch.full((8, 3, 64, 64), 2.0)
    out = gaussian_noise(x, 0.5, torch.Generator().manual_seed(0))
    noise = out - x
    assert abs(noise.std().item() - 0.5) < 0.01
    assert abs(noise.mean().item()) < 0.01
    assert gaussian_noise(x, 0.0) is x
