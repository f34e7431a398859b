"""Published parameter totals of well-known networks, from specs and from hand-built PyTorch modules."""

import torch
from torch import nn

from nablab.arch import summary
from nablab.arch.to_torch import to_torch

VGG16 = """input 3x224x224
conv3-64, conv3-64, maxpool2
conv3-128, conv3-128, maxpool2
conv3-256, conv3-256, conv3-256, maxpool2
conv3-512, conv3-512, conv3-512, maxpool2
conv3-512, conv3-512, conv3-512, maxpool2
fc-4096, relu, dropout, fc-4096, relu, dropout, fc-1000, softmax"""

ALEXNET = """input 3x224x224
conv11-64/s4/p2, relu, maxpool3/s2
conv5-192/p2, relu, maxpool3/s2
conv3-384, relu, conv3-256, relu, conv3-256, relu, maxpool3/s2
dropout, fc-4096, relu, dropout, fc-4096, relu, fc-1000"""


def resnet18_spec():
    lines = ["x0: input 3x224x224", "conv7-64/s2/p3/nb, bn, relu", "b0: maxpool3/s2/p1"]
    prev, c, i = "b0", 64, 1
    for stage, width in enumerate([64, 128, 256, 512]):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            lines.append(f"from({prev}), conv3-{width}/s{stride}/nb, bn, relu, conv3-{width}/nb, m{i}: bn")
            if stride == 2 or width != c:
                lines.append(f"from({prev}), conv1-{width}/s{stride}/p0/nb, bn, add(m{i})")
            else:
                lines.append(f"add({prev})")
            lines.append(f"b{i}: relu")
            prev, c, i = f"b{i}", width, i + 1
    lines.append("avgpool7, fc-1000")
    return "\n".join(lines)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def closed_form_rf(kernels_strides):
    """r = 1 + sum_l (k_l - 1) prod_{i<l} s_i (Araujo et al. 2019, single path)."""
    r, jump = 1, 1
    for k, s in kernels_strides:
        r += (k - 1) * jump
        jump *= s
    return r


def test_vgg16_138_357_544():
    layers, c = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
                        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 1000))
    s = summary(VGG16)
    assert s.totals["params"] == n_params(net) == 138_357_544
    assert s["conv3-512"]["output_shape"] == (512, 28, 28)
    assert s.rows[-1]["output_shape"] == (1000,)
    path = ([(3, 1)] * 2 + [(2, 2)]) * 2 + ([(3, 1)] * 3 + [(2, 2)]) * 3  # up to pool5
    assert s.rows[18]["type"] == "maxpool" and s.rows[18]["rf"] == (closed_form_rf(path),) * 2 == (212, 212)


def test_alexnet_torchvision_61_100_840():
    net = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.AdaptiveAvgPool2d(6),
        nn.Flatten(), nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))
    s = summary(ALEXNET)
    assert s.totals["params"] == n_params(net) == 61_100_840
    with torch.no_grad():
        feats = net[:13](torch.zeros(1, 3, 224, 224))
    assert tuple(feats.shape[1:]) == s.rows[13]["output_shape"] == (256, 6, 6)
    path = [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)]
    assert s.rows[13]["rf"] == (closed_form_rf(path),) * 2 == (195, 195)


def test_resnet18_11_689_512_with_residual_branches():
    spec = resnet18_spec()
    s = summary(spec)
    assert s.totals["params"] == 11_689_512
    assert s.totals["non_trainable"] == sum(2 * c for c in [64] + [64] * 4 + [128] * 5 + [256] * 5 + [512] * 5)
    net = to_torch(spec).eval()
    with torch.no_grad():
        assert tuple(net(torch.zeros(1, 3, 224, 224)).shape) == (1, 1000)
    assert n_params(net) == 11_689_512
    assert s["b8"]["output_shape"] == (512, 7, 7)
    # The widest path is the main one: stem, then two 3x3 convs per block.
    path = [(7, 2), (3, 2)] + [(3, 1)] * 4 + ([(3, 2)] + [(3, 1)] * 3) * 3
    assert s["b8"]["rf"] == (closed_form_rf(path),) * 2 == (435, 435)
