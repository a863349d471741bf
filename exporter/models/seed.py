"""The two small architectures of the seed article, with its bugs fixed.

The article's ``BasicBlock`` passed ``stride=stride`` where its argument is ``strd`` (a
NameError at construction); here the first convolution uses ``strd``. Its DenseNet code
named ``DenseNet159_Weights`` for densenet169; the torchvision registry in models.py uses
``DenseNet169_Weights``.

Both networks are CIFAR-style (32x32 inputs, 3x3 stem, no max-pool), after the article's
blocks: ``seed_resnet`` stacks ``BasicBlock`` as ResNet-18 does ([2, 2, 2, 2]);
``seed_densenet`` stacks ``DenseBlock`` layers with ``TransBlock`` between stages
(DenseNet-121's [6, 12, 24, 16] layout, growth rate 12).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    multiplier = 1

    def __init__(self, input_num_planes, num_planes, strd=1):
        super().__init__()
        self.conv_layer1 = nn.Conv2d(input_num_planes, num_planes, kernel_size=3, stride=strd, padding=1, bias=False)
        self.batch_norm1 = nn.BatchNorm2d(num_planes)
        self.conv_layer2 = nn.Conv2d(num_planes, num_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.batch_norm2 = nn.BatchNorm2d(num_planes)
        self.res_connnection = nn.Sequential()
        if strd > 1 or input_num_planes != self.multiplier * num_planes:
            self.res_connnection = nn.Sequential(
                nn.Conv2d(input_num_planes, self.multiplier * num_planes, kernel_size=1, stride=strd, bias=False),
                nn.BatchNorm2d(self.multiplier * num_planes),
            )

    def forward(self, inp):
        op = F.relu(self.batch_norm1(self.conv_layer1(inp)))
        op = self.batch_norm2(self.conv_layer2(op))
        op = op + self.res_connnection(inp)
        return F.relu(op)


class SeedResNet(nn.Module):
    """CIFAR-style ResNet built from the article's BasicBlock."""

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes=10, width=64):
        super().__init__()
        self.input_planes = width
        self.conv_layer = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.batch_norm = nn.BatchNorm2d(width)
        layers = []
        for i, n in enumerate(num_blocks):
            layers.append(self._layer(width * 2**i, n, 1 if i == 0 else 2))
        self.layers = nn.Sequential(*layers)
        self.fc_layer = nn.Linear(width * 2 ** (len(num_blocks) - 1) * BasicBlock.multiplier, num_classes)

    def _layer(self, planes, n, strd):
        blocks = []
        for s in [strd] + [1] * (n - 1):
            blocks.append(BasicBlock(self.input_planes, planes, s))
            self.input_planes = planes * BasicBlock.multiplier
        return nn.Sequential(*blocks)

    def forward(self, x):
        op = F.relu(self.batch_norm(self.conv_layer(x)))
        op = self.layers(op)
        op = F.adaptive_avg_pool2d(op, 1).flatten(1)
        return self.fc_layer(op)


class DenseBlock(nn.Module):
    """One dense layer of the article: BN-ReLU-Conv1x1-BN-ReLU-Conv3x3, then concatenate."""

    def __init__(self, input_num_planes, rate_inc):
        super().__init__()
        self.batch_norm1 = nn.BatchNorm2d(input_num_planes)
        self.conv_layer1 = nn.Conv2d(input_num_planes, 4 * rate_inc, kernel_size=1, bias=False)
        self.batch_norm2 = nn.BatchNorm2d(4 * rate_inc)
        self.conv_layer2 = nn.Conv2d(4 * rate_inc, rate_inc, kernel_size=3, padding=1, bias=False)

    def forward(self, inp):
        op = self.conv_layer1(F.relu(self.batch_norm1(inp)))
        op = self.conv_layer2(F.relu(self.batch_norm2(op)))
        return torch.cat([op, inp], 1)


class TransBlock(nn.Module):
    def __init__(self, input_num_planes, output_num_planes):
        super().__init__()
        self.batch_norm = nn.BatchNorm2d(input_num_planes)
        self.conv_layer = nn.Conv2d(input_num_planes, output_num_planes, kernel_size=1, bias=False)

    def forward(self, inp):
        op = self.conv_layer(F.relu(self.batch_norm(inp)))
        return F.avg_pool2d(op, 2)


class SeedDenseNet(nn.Module):
    """CIFAR-style DenseNet built from the article's DenseBlock and TransBlock."""

    def __init__(self, num_blocks=(6, 12, 24, 16), growth_rate=12, reduction=0.5, num_classes=10):
        super().__init__()
        planes = 2 * growth_rate
        self.conv_layer = nn.Conv2d(3, planes, kernel_size=3, padding=1, bias=False)
        stages = []
        for i, n in enumerate(num_blocks):
            layers = []
            for _ in range(n):
                layers.append(DenseBlock(planes, growth_rate))
                planes += growth_rate
            stages.append(nn.Sequential(*layers))
            if i != len(num_blocks) - 1:
                out_planes = int(math.floor(planes * reduction))
                stages.append(TransBlock(planes, out_planes))
                planes = out_planes
        self.features = nn.Sequential(*stages)
        self.batch_norm = nn.BatchNorm2d(planes)
        self.fc_layer = nn.Linear(planes, num_classes)

    def forward(self, x):
        op = self.features(self.conv_layer(x))
        op = F.relu(self.batch_norm(op))
        op = F.adaptive_avg_pool2d(op, 1).flatten(1)
        return self.fc_layer(op)


def seed_resnet(num_classes: int = 10, **kwargs) -> SeedResNet:
    return SeedResNet(num_classes=num_classes, **kwargs)


def seed_densenet(num_classes: int = 10, **kwargs) -> SeedDenseNet:
    return SeedDenseNet(num_classes=num_classes, **kwargs)
