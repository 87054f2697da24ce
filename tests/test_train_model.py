import torch

from mnist_edge.train.config import FIRST_LAYOUT_WIDTHS, Config, config_from_dict
from mnist_edge.train.model import MnistNet, parameter_count, receptive_field


def test_parameter_budget():
    assert parameter_count(MnistNet()) < 10_000


def test_output_shape_for_any_batch():
    model = MnistNet().eval()
    for n in (1, 7):
        assert model(torch.rand(n, 1, 28, 28)).shape == (n, 10)


def test_receptive_field_covers_the_image():
    assert receptive_field(MnistNet()) >= 28


def test_receptive_field_recurrence_on_a_known_stack():
    # conv3 -> pool2 -> conv3: 3, then 4 (jump 2), then 4 + 2*2 = 8.
    stack = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3), torch.nn.MaxPool2d(2), torch.nn.Conv2d(1, 1, 3))
    assert receptive_field(stack) == 8


def test_only_export_friendly_layers():
    allowed = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ReLU, torch.nn.MaxPool2d,
               torch.nn.AdaptiveAvgPool2d, torch.nn.PixelUnshuffle, torch.nn.Sequential, MnistNet)
    leaves = [m for m in MnistNet().modules() if type(m).__name__ != "Normalize"]
    assert all(isinstance(m, allowed) for m in leaves)


def test_space_to_depth_stem_runs_the_first_stage_at_14x14_on_4_channels():
    model = MnistNet().eval()
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert model.stem == "s2d" and first.in_channels == 4
    # Each 2x2 block becomes the 4 channels of one position: a lossless rearrangement of the 784 pixels.
    x = torch.arange(784.0).reshape(1, 1, 28, 28)
    s2d = model.features[1](x)
    assert s2d.shape == (1, 4, 14, 14) and torch.equal(s2d.flatten().sort().values, x.flatten())
    assert s2d[0, :, 0, 0].tolist() == [0.0, 1.0, 28.0, 29.0]


def test_the_default_is_the_space_to_depth_network_with_three_convolutions_at_14x14():
    model = MnistNet()
    assert model.stem == "s2d" and model.widths == ((16, 16, 16), (16, 14))
    assert parameter_count(model) == 9_810 and receptive_field(model) == 32


def test_the_first_layout_stays_available():
    model = MnistNet(FIRST_LAYOUT_WIDTHS, stem="conv")
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert parameter_count(model) == 9_042 and first.in_channels == 1


def test_a_recipe_saved_before_the_stem_option_reads_as_the_first_layout():
    saved = {"epochs": 15, "seed": 3}  # neither stem nor widths: the first layout was the only network
    config = config_from_dict(saved)
    assert (config.stem, config.widths, config.seed) == ("conv", FIRST_LAYOUT_WIDTHS, 3)
    flat = config_from_dict({"widths": [8, 8, 16, 16, 16, 16]})  # widths before stages: pairs
    assert flat.widths == FIRST_LAYOUT_WIDTHS and Config().widths != FIRST_LAYOUT_WIDTHS
