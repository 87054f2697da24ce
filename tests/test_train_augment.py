import torch

from mnist_edge.contract import PIXEL_MAX
from mnist_edge.train.augment import random_affine


def test_shape_dtype_and_range_are_kept():
    images = torch.rand(16, 1, 28, 28)
    out = random_affine(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 1


def test_zero_strength_is_identity():
    images = torch.rand(4, 1, 28, 28)
    out = random_affine(images, torch.Generator().manual_seed(0), max_degrees=0, max_shift=0, max_scale=0)
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_each_image_gets_its_own_transform():
    images = torch.zeros(8, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1
    out = random_affine(images, torch.Generator().manual_seed(0))
    assert not torch.allclose(out[0], out[1])


def test_same_seed_same_augmentation():
    images = torch.rand(8, 1, 28, 28)
    a = random_affine(images, torch.Generator().manual_seed(3))
    b = random_affine(images, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def centre_of_mass(t: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = t.sum((1, 2, 3))
    return torch.stack([(t * ys).sum((1, 2, 3)) / mass, (t * xs).sum((1, 2, 3)) / mass], 1)


def test_each_output_stays_with_its_own_input():
    """Squares at 16 distinct places: each augmented square is still nearest its own origin, so the batch
    order, and with it every label, is kept."""
    images = torch.zeros(16, 1, 28, 28)
    for i in range(16):
        row, col = 4 + 6 * (i // 4), 4 + 6 * (i % 4)
        images[i, :, row - 1 : row + 2, col - 1 : col + 2] = 1
    out = random_affine(images, torch.Generator().manual_seed(2))
    distances = torch.cdist(centre_of_mass(out), centre_of_mass(images))
    assert torch.equal(distances.argmin(1), torch.arange(16))


def test_digits_keep_their_ink():
    """Small affine changes neither erase nor smear a digit: its ink stays within a third of the original."""
    from mnist_edge.train.data import load_split

    images, _ = load_split(train=False)
    x = images[:256].unsqueeze(1).float() / PIXEL_MAX
    out = random_affine(x, torch.Generator().manual_seed(1))
    ink_ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((ink_ratio > 0.7) & (ink_ratio < 1.35)).all()
