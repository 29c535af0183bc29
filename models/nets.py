"""Built-in network definitions. Module names (conv1, fc, ...) become QGraph node names."""

from __future__ import annotations

from torch import Tensor, nn


class DigitsCNN(nn.Module):
    """conv(1->16)-BN-ReLU, conv(16->32)-BN-ReLU, maxpool 2x2, flatten, linear(512->10); 8x8 in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.fc(self.flatten(self.pool(x)))


class DigitsMLP(nn.Module):
    """flatten 64 -> linear 64 -> ReLU -> linear 10: trains in about a second."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64, 64)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


class MnistCNN(nn.Module):
    """conv(1->8)-BN-ReLU-maxpool 2x2, conv(8->16)-BN-ReLU-maxpool 2x2, flatten,
    linear(784->10); 28x28 in. 0.29 M MACs per image; 9.1 k weights, 7.8 k of them in fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        return self.fc(self.flatten(x))


class MnistDeep(nn.Module):
    """Seven weighted layers of very different size and sensitivity, 28x28 in:
    conv(1->8)-BN-ReLU-pool, conv(8->16)-BN-ReLU-pool, conv(16->32)-BN-ReLU-pool (7 -> 3),
    conv(32->48)-BN-ReLU, flatten, linear(432->64)-ReLU, linear(64->32)-ReLU, linear(32->10).

    Weights per layer 72 / 1,152 / 4,608 / 13,824 / 27,648 / 2,048 / 320 (49.7 k, 56 % in fc1);
    0.47 M MACs per image. Small, sensitive first and last layers next to large, tolerant middle
    ones give a per-layer bit allocator real choices (benchmarks/quant_study.py). fc1's
    reduction length (432) fits the default weight buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)        # 28 -> 14
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)        # 14 -> 7
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(32)
        self.relu3 = nn.ReLU()
        self.pool3 = nn.MaxPool2d(2)        # 7 -> 3 (floor)
        self.conv4 = nn.Conv2d(32, 48, 3, padding=1)
        self.bn4 = nn.BatchNorm2d(48)
        self.relu4 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(48 * 3 * 3, 64)
        self.relu5 = nn.ReLU()
        self.fc2 = nn.Linear(64, 32)
        self.relu6 = nn.ReLU()
        self.fc3 = nn.Linear(32, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.pool3(self.relu3(self.bn3(self.conv3(x))))
        x = self.flatten(self.relu4(self.bn4(self.conv4(x))))
        return self.fc3(self.relu6(self.fc2(self.relu5(self.fc1(x)))))
