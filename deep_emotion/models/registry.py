"""Model families by name, after timm's registry: `register_model`, `create_model`, `list_models`.

A family is one module that defines a network and registers it under the name that model cards carry in
their `architecture` field ("DeepEmotion", "ResNetSmall"); a recipe picks it with `architecture = "..."`.
`load_checkpoint`, training and fine-tuning build models only through `create_model`, and use them only
through the `EmotionModel` interface below, so adding a family is its module (listed in `FAMILY_MODULES`)
plus a recipe.

    @register_model("MyNet")
    class MyNet(nn.Module):
        config_class = MyNetConfig  # frozen dataclass with to_dict/from_dict, num_classes, input_size
        def __init__(self, config: MyNetConfig = MyNetConfig()) -> None: ...

A plain factory `(config: dict) -> nn.Module` may be registered too (`register_model("X")(factory)`);
recipes then keep its `[model]` table as a dict, checked when the model is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from deep_emotion.models.posthoc import PostHoc

from deep_emotion.models.card import DEFAULT_ARCHITECTURE  # noqa: E402  (one definition, torch-free)

FAMILY_MODULES = ("deep_emotion.models.paper", "deep_emotion.models.resnet")  # imported on first use: they register


class ModelConfigLike(Protocol):
    """A family's configuration: a frozen dataclass, written into model cards as `model_config`."""

    num_classes: int
    input_size: int
    mean: float  # the model normalises its input: (x - mean) / std, pixels in [0, 1]
    std: float

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class EmotionModel(Protocol):
    """What the library asks of a model (every family is also an `nn.Module`).

    Input: grey faces (B, 1, H, W) with H = W = `config.input_size`, pixels in [0, 1]; the model normalises
    them itself. `network(x) == head(forward_features(x))`; `features` is the module that does the bulk of
    `forward_features` (for DeepEmotion, after the input normalisation and the spatial transformer).
    """

    config: ModelConfigLike
    features: nn.Module  # the feature extractor
    posthoc: PostHoc | None  # eval mode: corrections applied by `forward` (calibration.PostHoc)
    training: bool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes); in eval mode with `posthoc` set, the corrected logits."""
        ...

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """The network's own logits, without post-hoc corrections."""
        ...

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> the features `head` takes (B, D)."""
        ...

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Features (B, D) -> logits (B, num_classes): everything after the feature extractor."""
        ...

    @property
    def classifier(self) -> nn.Linear:
        """The last layer: one row of weights per class."""
        ...

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last layer by a freshly initialised one with `num_classes` outputs (and the config)."""
        ...

    def stn_view(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(warped input in [0, 1] (B, 1, H, W), θ (B, 2, 3)) of the spatial transformer; None without one."""
        ...

    def fc_weight_penalty(self) -> torch.Tensor:
        """‖W‖² of the layers the recipe's `fc_l2` regularises (at least the classifier)."""
        ...


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[dict[str, Any]], nn.Module]  # model config as a dict (missing keys: defaults)
    config_class: type | None  # the config dataclass, when the family has one


_REGISTRY: dict[str, Family] = {}
_loaded = False
T = TypeVar("T")


def register_model(name: str, config_class: type | None = None) -> Callable[[T], T]:
    """Decorator: register a model class (built as `cls(config_class.from_dict(d))`; `config_class` defaults to
    the class's own `config_class` attribute) or a factory `(dict) -> nn.Module` under `name`."""

    def decorate(obj: T) -> T:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        cfg = config_class or getattr(obj, "config_class", None)
        if isinstance(obj, type):
            if cfg is None:
                raise TypeError(f"{obj.__name__}: a registered model class needs a config_class")
            build: Callable[[dict[str, Any]], nn.Module] = lambda d: obj(cfg.from_dict(d))  # noqa: E731
            obj.architecture = name  # type: ignore[attr-defined]  # what save_checkpoint writes into the card
        elif callable(obj):
            build = obj  # type: ignore[assignment]
        else:
            raise TypeError(f"register_model({name!r}) needs a class or a factory, not {obj!r}")
        _REGISTRY[name] = Family(name, build, cfg)
        return obj

    return decorate


def _load_families() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in FAMILY_MODULES:
            importlib.import_module(module)


def list_models() -> list[str]:
    """The registered architecture names, sorted."""
    _load_families()
    return sorted(_REGISTRY)


def family(name: str) -> Family:
    """The registry entry of `name`; ValueError naming the known architectures for an unknown one."""
    _load_families()
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def config_dict(config: Any) -> dict[str, Any]:
    """A model config (dataclass with `to_dict`, or a dict) as a plain dict."""
    return config.to_dict() if hasattr(config, "to_dict") else dict(config or {})


def create_model(name: str = DEFAULT_ARCHITECTURE, config: Any = None, **overrides: Any) -> nn.Module:
    """A new model of family `name`, from its config (dict, config object or None for the defaults) with
    `overrides` on top, e.g. `create_model("ResNetSmall", recipe.model, num_classes=3)`.
    ValueError for an unknown name; ValueError/TypeError from the family for a bad config."""
    fam = family(name)
    model = fam.build({**config_dict(config), **overrides})
    if getattr(model, "architecture", None) != name:
        model.architecture = name  # a factory's model: save_checkpoint reads the name from here
    return model


def architecture_name(model: nn.Module) -> str:
    """The registered name of `model`'s family (what goes into a card's `architecture`)."""
    name = getattr(model, "architecture", None)
    if not isinstance(name, str):
        raise ValueError(f"{type(model).__name__} is not a registered architecture (see register_model)")
    return name


def classifier_name(model: nn.Module) -> str:
    """The state-dict prefix of `model.classifier`, e.g. "fc2" for DeepEmotion."""
    last = model.classifier
    for name, module in model.named_modules():
        if module is last:
            return name
    raise ValueError(f"{type(model).__name__}.classifier is not one of its submodules")
