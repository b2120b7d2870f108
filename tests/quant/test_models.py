"""Model zoo: TorchVision-compatible state_dict names and shapes, options, registry errors."""

from __future__ import annotations

import pytest
import torch

from filmqnn_quant.models import MODELS, build_model

# Keys and shapes as they appear in TorchVision's ImageNet checkpoints (full width, 1000 classes).
RESNET18_KEYS = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_var": (64,),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.1.bn2.num_batches_tracked": (),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.running_mean": (128,),
    "layer4.1.conv2.weight": (512, 512, 3, 3),
    "fc.weight": (1000, 512),
    "fc.bias": (1000,),
}
RESNET50_KEYS = {
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer3.5.bn3.weight": (1024,),
    "layer4.2.conv2.weight": (512, 512, 3, 3),
    "fc.weight": (1000, 2048),
}
MOBILENET_V2_KEYS = {
    "features.0.0.weight": (32, 3, 3, 3),
    "features.0.1.running_mean": (32,),
    "features.1.conv.0.0.weight": (32, 1, 3, 3),
    "features.1.conv.1.weight": (16, 32, 1, 1),
    "features.1.conv.2.weight": (16,),
    "features.2.conv.0.0.weight": (96, 16, 1, 1),
    "features.2.conv.1.0.weight": (96, 1, 3, 3),
    "features.2.conv.2.weight": (24, 96, 1, 1),
    "features.2.conv.3.running_var": (24,),
    "features.17.conv.2.weight": (320, 960, 1, 1),
    "features.18.0.weight": (1280, 320, 1, 1),
    "classifier.1.weight": (1000, 1280),
}


@pytest.mark.parametrize(
    "name,keys,n_entries,n_params",
    [
        ("resnet18", RESNET18_KEYS, 122, 11_689_512),
        ("resnet50", RESNET50_KEYS, 320, 25_557_032),
        ("mobilenet_v2", MOBILENET_V2_KEYS, 314, 3_504_872),
    ],
)
def test_torchvision_state_dict_names(name, keys, n_entries, n_params):
    m = build_model(name)
    sd = m.state_dict()
    for k, shape in keys.items():
        assert k in sd, f"{name}: missing TorchVision key {k}"
        assert tuple(sd[k].shape) == shape, k
    # Same number of entries and parameters as TorchVision's model (documented values).
    assert len(sd) == n_entries
    assert sum(p.numel() for p in m.parameters()) == n_params


def test_options_and_forward_shapes():
    torch.manual_seed(0)
    m = build_model("resnet18", num_classes=10, in_channels=1, width_mult=0.125, small_input=True)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert m.conv1.weight.shape == (8, 1, 3, 3)
    assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    m = build_model("MobileNet-V2", num_classes=10, width_mult=0.25, last_channel=32)
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    m = build_model("small_cnn", width_mult=0.25)
    assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    m = build_model("resnet50", num_classes=5, width_mult=0.125, small_input=True)
    assert m(torch.rand(1, 3, 16, 16)).shape == (1, 5)


def test_state_dict_round_trip_between_instances():
    a = build_model("mobilenet_v2", width_mult=0.25, num_classes=3)
    b = build_model("mobilenet_v2", width_mult=0.25, num_classes=3)
    b.load_state_dict(a.state_dict())  # strict: every name matches


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError) as e:
        build_model("vgg16")
    for k in MODELS:
        assert k in str(e.value)
    with pytest.raises(ValueError, match="bad options"):
        build_model("resnet18", no_such_option=1)
