"""The attentional convolutional network of Minaee & Abdolrashidi, "Deep-Emotion" (2019).

Reading order: the config, the spatial transformer, the network.

Input: a batch of grey faces, shape (B, 1, 48, 48), pixel values in [0, 1].
The network normalises them itself ((x - mean) / std), so a black pixel is 0 at its input.

Deviations from the paper are named options in `ModelConfig`, all off by default:
- `batch_norm`: BatchNorm2d after each feature conv (the paper has none).
- `channels`: width of the four feature convs (paper: 10).
- `fc_hidden`: width of the first FC layer (the paper does not give it; 50 as in the
  authors' description of a small network and the common re-implementation).
- `stages`: a wider feature extractor for issue 8's `fer2013-wide` — per stage two 3x3 'same' convs,
  each followed by BatchNorm and ReLU, then a 2x2 max-pool (`channels` and `batch_norm` then do not
  apply). `()` keeps the paper's four convs.
  Three stages + two FC layers are 8 weight layers after the STN (the paper's count is 6).
In eval mode the paper network evaluates its first STN conv + pool and its first two feature convs + pool
through exact re-expressions (fold.py; `set_fold(False)` switches them off): the same function, faster
(README.md, *Speed*).
Details the paper leaves open, fixed here and documented in README.md:
- a ReLU between the two FC layers (otherwise they collapse into one linear map);
- the STN samples the normalised image with zero padding (mid-grey outside the face).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from deep_emotion.models.fold import FoldCache, compose_convs, conv_pool, folds, phase_kernel
from deep_emotion.models.registry import register_model


class ConfigDict:
    """A model config dataclass to and from the card's `model_config` (unknown keys refused)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class ModelConfig(ConfigDict):
    num_classes: int = 7  # set from the data set's class list
    input_size: int = 48  # square grey input, pixels
    channels: int = 10  # filters of each of the four 3x3 feature convs (paper: 10)
    fc_hidden: int = 50  # units of the first FC layer
    dropout: float = 0.5  # before the FC layers; nn.Dropout, so off in eval()
    stn: bool = True  # spatial transformer on (paper) or off (ablation)
    stages: tuple[int, ...] = ()  # deviation: conv widths per stage of the wider extractor; () = paper
    batch_norm: bool = False  # deviation: BatchNorm2d after every feature conv
    init_std: float = 0.05  # Gaussian init of conv and FC weights (paper: sigma 0.05)
    mean: float = 0.5  # input normalisation, pixel scale [0, 1]
    std: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.stages, tuple):  # TOML and JSON give lists; keep the config hashable
            object.__setattr__(self, "stages", tuple(self.stages))
        if any(int(w) < 1 for w in self.stages):
            raise ValueError(f"stages must be positive conv widths, not {self.stages}")


class SpatialTransformer(nn.Module):
    """Localisation net (conv 8@7x7, pool, ReLU, conv 10@5x5, pool, ReLU, FC 32, FC 6) + sampler."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=7),  # (B, 8, 42, 42)
            nn.MaxPool2d(2, stride=2),  # (B, 8, 21, 21)
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 10, kernel_size=5),  # (B, 10, 17, 17)
            nn.MaxPool2d(2, stride=2),  # (B, 10, 8, 8)
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, 1, input_size, input_size)).shape[1]
        self.regressor = nn.Sequential(nn.Linear(n_flat, 32), nn.ReLU(inplace=True), nn.Linear(32, 6))
        self.fold = True  # eval mode: conv 7x7 + pool as one space-to-depth conv (fold.py)
        self._fold_cache = FoldCache()

    def reset_to_identity(self) -> None:
        """The last layer predicts the identity transform whatever the input."""
        last = self.regressor[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def stage1(self, x: torch.Tensor) -> torch.Tensor:
        """First conv, pool, ReLU of the localisation net: (B, 8, 21, 21) at 48x48 (folded in eval mode)."""
        if not folds(self, x, 7):
            return self.features[:3](x)
        kernel, bias = self.folded_stage1()
        return F.relu(conv_pool(x, kernel, bias)).contiguous(memory_format=torch.channels_last)

    def folded_stage1(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(kernel, bias) of `fold.conv_pool` for the first conv + pool."""
        conv = self.features[0]
        return self._fold_cache.get([conv.weight, conv.bias], lambda: phase_kernel(conv.weight, conv.bias))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """θ (B, 2, 3) from `stage1`'s output: second conv, pool, ReLU, FC 32, FC 6."""
        return self.regressor(self.features[3:](h)).view(-1, 2, 3)

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage1(x))  # (B, 2, 3)

    @staticmethod
    def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, affine_grid(theta, x.shape[-2], x.shape[-1]), align_corners=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = self.theta(x)
        return self.warp(x, theta), theta


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """`F.affine_grid(theta, (B, C, h, w), align_corners=False)` by broadcasting: the same grid (B, h, w, 2),
    without its batched matmul of inner size 3, which took 9 of the 85 ms of an occlusion map (441 copies) on CPU."""
    xs = (torch.arange(w, dtype=theta.dtype, device=theta.device) * 2 + 1) / w - 1  # pixel centres in [-1, 1]
    ys = (torch.arange(h, dtype=theta.dtype, device=theta.device) * 2 + 1) / h - 1
    t = theta[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    grid = t[:, :, 0] * xs.view(1, 1, 1, w) + t[:, :, 1] * ys.view(1, 1, h, 1) + t[:, :, 2]  # (B, 2, h, w)
    return grid.permute(0, 2, 3, 1)


def wide_stages(widths: tuple[int, ...]) -> list[nn.Module]:
    """(conv 3x3 same, BN, ReLU) x 2, max-pool 2x2 — per stage; 48 -> 24 -> 12 -> 6 with three stages."""
    layers: list[nn.Module] = []
    c_in = 1
    for w in widths:
        for cin in (c_in, w):
            layers += [nn.Conv2d(cin, w, kernel_size=3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2, stride=2))
        c_in = w
    return layers


@register_model("DeepEmotion")
class DeepEmotion(nn.Module):
    """STN, then conv-conv-pool-ReLU twice, dropout, FC, ReLU, FC. `forward` returns logits.
    Implements architectures.EmotionModel: `features` is the conv extractor, `head` dropout-FC-ReLU-FC,
    `classifier` is `fc2`."""

    config_class = ModelConfig

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.stn = SpatialTransformer(config.input_size) if config.stn else None

        def block(c_in: int) -> list[nn.Module]:
            layers: list[nn.Module] = []
            for cin in (c_in, c):
                layers.append(nn.Conv2d(cin, c, kernel_size=3))
                if config.batch_norm:
                    layers.append(nn.BatchNorm2d(c))
            return layers + [nn.MaxPool2d(2, stride=2), nn.ReLU(inplace=True)]

        if config.stages:
            self.features = nn.Sequential(*wide_stages(config.stages), nn.Flatten())
        else:
            self.features = nn.Sequential(*block(1), *block(c), nn.Flatten())  # (B, c*9*9) at 48x48
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, 1, config.input_size, config.input_size)).shape[1]
        self.dropout = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(n_flat, config.fc_hidden)
        self.fc2 = nn.Linear(config.fc_hidden, config.num_classes)
        # eval mode, paper extractor: conv-conv-pool as one 5x5 conv over the pooling phases (fold.py)
        self._fold_cache = FoldCache()
        self.set_fold(True)
        self.posthoc = None  # eval mode: calibration.PostHoc (flip averaging, logit adjustment, temperature)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Gaussian init (sigma from the config) of every conv and FC weight; STN starts at identity."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, std=self.config.init_std)
                nn.init.zeros_(m.bias)
        if self.stn is not None:
            self.stn.reset_to_identity()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.config.mean) / self.config.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; in eval mode with `posthoc` set, the corrected logits the model card ships (calibration.py)."""
        if self.posthoc is None or self.training:
            return self.network(x)
        return self.posthoc.logits(self.network, x)

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """The network's own logits (no post-hoc correction)."""
        return self.head(self.forward_features(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise, warp by the STN (if any), extract: (B, c*9*9) for the paper network at 48x48."""
        z = self.normalize(x)  # (B, 1, 48, 48)
        if self.stn is not None:
            z, _ = self.stn(z)
        return self.extract(z)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits from the extracted features: dropout, FC, ReLU, FC."""
        return self.fc2(F.relu(self.fc1(self.dropout(h))))  # (B, num_classes)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Logits from the normalised (and warped) input: feature extractor, then `head`."""
        return self.head(self.extract(z))

    @property
    def classifier(self) -> nn.Linear:
        """The last FC layer (`fc2`)."""
        return self.fc2

    def reset_classifier(self, num_classes: int) -> None:
        """A new last FC layer with `num_classes` outputs (Gaussian init as at construction); config follows."""
        old = self.fc2
        self.fc2 = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
        nn.init.normal_(self.fc2.weight, std=self.config.init_std)
        nn.init.zeros_(self.fc2.bias)
        self.config = replace(self.config, num_classes=num_classes)

    def set_fold(self, on: bool) -> DeepEmotion:
        """Switch the eval-mode re-expressions of fold.py on or off (off = the layers exactly as listed)."""
        self.fold = on and not self.config.stages and not self.config.batch_norm
        if self.stn is not None:
            self.stn.fold = on
        return self

    def extract(self, z: torch.Tensor) -> torch.Tensor:
        """`self.features(z)`; in eval mode the paper's first block goes through its folded form."""
        if not folds(self, z, 5):
            return self.features(z)
        c1, c2 = self.features[0], self.features[1]
        params = [c1.weight, c1.bias, c2.weight, c2.bias]
        kernel, bias = self._fold_cache.get(params, lambda: phase_kernel(*compose_convs(c1, c2)))
        h = F.relu(conv_pool(z, kernel, bias)).contiguous(memory_format=torch.channels_last)  # = features[:4]
        return self.features[4:](h)

    @torch.no_grad()
    def stn_view(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The STN-warped input in pixel scale [0, 1], (B, 1, H, W), and θ, (B, 2, 3); None without an STN."""
        if self.stn is None:
            return None
        warped, theta = self.stn(self.normalize(x))
        return (warped * self.config.std + self.config.mean).clamp(0, 1), theta

    def fc_weight_penalty(self) -> torch.Tensor:
        """‖W‖² of the last two FC layers: the paper's regulariser, scaled by λ in the loss."""
        return self.fc1.weight.pow(2).sum() + self.fc2.weight.pow(2).sum()
