"""Plain per-region reference of the region CNNs: six ordinary modules, for tests and benchmarks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_mie import MieConfig


class MieSingleRegionCNN(nn.Module):
    """The paper's spatial CNN for ONE region, written the obvious way (default memory format)."""

    def __init__(self, config: MieConfig):
        super().__init__()
        k1, k2 = config.conv1_kernel_size, config.conv2_kernel_size
        self.conv1 = nn.Conv2d(config.num_channels, config.conv1_filters, k1, padding=k1 // 2)
        self.conv2 = nn.Conv2d(config.conv1_filters, config.conv2_filters, k2, padding=k2 // 2)
        self.inception = nn.ModuleList(
            nn.Conv2d(config.conv2_filters, config.inception_filters, k, padding=k // 2)
            for k in config.inception_kernel_sizes
        )
        self.fc1 = nn.Linear(config.cnn_channels, config.cnn_hidden_size)
        self.dropout = nn.Dropout(config.cnn_dropout)
        self.fc2 = nn.Linear(config.cnn_hidden_size, config.region_feature_size)
        self.head = nn.Linear(config.region_feature_size, config.num_region_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (N, C, H, W)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.cat([F.relu(conv(x)) for conv in self.inception] + [x], dim=1)
        x = x.mean(dim=(2, 3))  # global average pooling -> (N, cnn_channels)
        x = self.dropout(F.relu(self.fc1(x)))
        features = F.relu(self.fc2(x))
        return features, self.head(features)


class MieRegionCNNReference(nn.Module):
    """One `MieSingleRegionCNN` per region, run in a Python loop: what the batched
    `MieRegionCNN` must reproduce, and the baseline its speed is measured against."""

    def __init__(self, config: MieConfig):
        super().__init__()
        self.regions = nn.ModuleList(MieSingleRegionCNN(config) for _ in range(config.num_regions))

    @torch.no_grad()
    def load_from_batched(self, batched) -> "MieRegionCNNReference":
        """Copy the weights of a `MieRegionCNN` (stacked per region) into the plain modules."""
        for r, module in enumerate(self.regions):
            for name in ("conv1", "conv2"):
                getattr(module, name).weight.copy_(getattr(batched, name).weight[r])
                getattr(module, name).bias.copy_(getattr(batched, name).bias[r])
            for conv, stacked in zip(module.inception, batched.inception):
                conv.weight.copy_(stacked.weight[r])
                conv.bias.copy_(stacked.bias[r])
            for name in ("fc1", "fc2", "head"):
                getattr(module, name).weight.copy_(getattr(batched, name).weight[r])
                getattr(module, name).bias.copy_(getattr(batched, name).bias[r])
        return self

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # pixel_values: (N, R, C, H, W) -> features (N, R, F), logits (N, R, K)
        outs = [module(pixel_values[:, r]) for r, module in enumerate(self.regions)]
        return torch.stack([f for f, _ in outs], 1), torch.stack([l for _, l in outs], 1)
