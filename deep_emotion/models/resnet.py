"""A small ResNet for 48x48 grey faces (He et al. 2016, "Deep Residual Learning"): the second model family.

Stem conv 3x3 (32), then one stage of BasicBlocks per width (32, 64, 128; strides 1, 2, 2: 48 -> 48 -> 24 -> 12),
global average pooling, dropout, one linear layer. No spatial transformer: `stn_view` returns None.
Like DeepEmotion, it takes pixels in [0, 1] and normalises them itself ((x - mean) / std).
Registered as "ResNetSmall"; recipe: train/ablations/fer2013-resnet.toml.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from deep_emotion.models.paper import ConfigDict
from deep_emotion.models.registry import register_model


@dataclass(frozen=True)
class ResNetConfig(ConfigDict):
    num_classes: int = 7  # set from the data set's class list
    input_size: int = 48  # square grey input, pixels
    stem: int = 32  # channels of the stem conv
    widths: tuple[int, ...] = (32, 64, 128)  # channels per stage
    strides: tuple[int, ...] = (1, 2, 2)  # stride of each stage's first block
    depth: int = 1  # BasicBlocks per stage
    dropout: float = 0.0  # before the linear layer; off in eval()
    mean: float = 0.5  # input normalisation, pixel scale [0, 1]
    std: float = 0.5

    def __post_init__(self) -> None:
        for key in ("widths", "strides"):  # TOML and JSON give lists; keep the config hashable
            object.__setattr__(self, key, tuple(int(v) for v in getattr(self, key)))
        if not self.widths or any(w < 1 for w in self.widths) or self.stem < 1:
            raise ValueError(f"stem and widths must be positive channel counts, not {self.stem}, {self.widths}")
        if len(self.strides) != len(self.widths) or any(s not in (1, 2) for s in self.strides):
            raise ValueError(f"strides must be 1 or 2, one per stage ({len(self.widths)}), not {self.strides}")
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, not {self.depth}")


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)]


class BasicBlock(nn.Module):
    """conv 3x3, BN, ReLU, conv 3x3, BN, plus the input (1x1 conv + BN where the shape changes), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c_in, c_out, 3, stride), nn.ReLU(inplace=True), *conv_bn(c_out, c_out, 3, 1))
        self.shortcut = (
            nn.Sequential(*conv_bn(c_in, c_out, 1, stride)) if stride != 1 or c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


@register_model("ResNetSmall")
class ResNetSmall(nn.Module):
    """Stem, residual stages, global average pool (`features`), dropout and linear (`head`). Returns logits."""

    config_class = ResNetConfig

    def __init__(self, config: ResNetConfig = ResNetConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = [*conv_bn(1, config.stem, 3, 1), nn.ReLU(inplace=True)]
        c_in = config.stem
        for width, stride in zip(config.widths, config.strides):
            for i in range(config.depth):
                layers.append(BasicBlock(c_in, width, stride if i == 0 else 1))
                c_in = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, widths[-1])
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(c_in, config.num_classes)
        self.posthoc = None  # eval mode: calibration.PostHoc, as for DeepEmotion
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init of the convs, BN at identity (last BN of each block at zero: blocks start as identities),
        small Gaussian linear layer."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.body[-1].weight)
        self._init_linear(self.fc)

    @staticmethod
    def _init_linear(fc: nn.Linear) -> None:
        nn.init.normal_(fc.weight, std=0.01)
        nn.init.zeros_(fc.bias)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.config.mean) / self.config.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; in eval mode with `posthoc` set, the corrected logits (calibration.py)."""
        if self.posthoc is None or self.training:
            return self.network(x)
        return self.posthoc.logits(self.network, x)

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """The network's own logits (no post-hoc correction)."""
        return self.head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] (B, 1, H, W) -> pooled features (B, widths[-1])."""
        return self.features(self.normalize(x))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits from the pooled features: dropout, linear."""
        return self.fc(self.dropout(h))

    @property
    def classifier(self) -> nn.Linear:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """A new linear layer with `num_classes` outputs; the config follows."""
        old = self.fc
        self.fc = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
        self._init_linear(self.fc)
        self.config = replace(self.config, num_classes=num_classes)

    def stn_view(self, x: torch.Tensor) -> None:
        """No spatial transformer: nothing to show."""
        return None

    def fc_weight_penalty(self) -> torch.Tensor:
        """‖W‖² of the linear layer (the recipe's `fc_l2`; the paper's regulariser covers the last FC layers)."""
        return self.fc.weight.pow(2).sum()
