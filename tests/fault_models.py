"""Models broken in INT8 by construction, as source text for `export --model FILE.py:dead`.

DEAD_CHANNEL_NET: conv1's output channel 7 is always 0 (zero weights, bias -1, ReLU), and conv2
reads it with weight 100. In FP32 that weight multiplies zeros; per output channel it sets conv2's
INT8 weight scale to 100/127, so every other conv2 weight (about 0.3) rounds to 0 or +-0.79. So
INT8 fails at /conv2/Conv, carried by its weights; keeping that one layer in float leaves three
ordinary layers in INT8.
"""

DEAD_CHANNEL_NET = '''
import torch
import torch.nn as nn


class DeadChannelNet(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)
        with torch.no_grad():
            for m in (self.conv1, self.conv2, self.conv3, self.fc):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.3)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            self.conv1.weight[7] = 0.0
            self.conv1.bias[7] = -1.0
            self.conv2.weight[:, 7, 1, 1] = 100.0

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def dead():
    return DeadChannelNet().eval()
'''
DEAD_CHANNEL_CULPRIT = "/conv2/Conv"
