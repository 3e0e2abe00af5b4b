"""Training recipes: TOML files read into frozen dataclasses that reject unknown keys.

`architecture` names the model family (architectures.py; default "DeepEmotion"); the `[model]` table is that
family's config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from deep_emotion.errors import RecipeError
from deep_emotion.models import registry as architectures


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation applied to whole batches on tensors (see augment.py); 0 turns each part off."""

    flip: bool = True  # random horizontal flip
    rotate_deg: float = 10.0  # uniform rotation in ±rotate_deg
    scale: float = 0.1  # uniform zoom in 1 ± scale
    translate: float = 0.1  # uniform shift in ± translate of the image size
    brightness: float = 0.2  # additive, ± brightness
    contrast: float = 0.2  # multiplicative around the mean, 1 ± contrast
    erase_prob: float = 0.5  # random erasing (Zhong et al.) with this probability
    erase_area: tuple[float, float] = (0.02, 0.15)  # area fraction of the erased box


@dataclass(frozen=True)
class Recipe:
    name: str  # checkpoint name: checkpoints/<name>.safetensors
    dataset: str  # reader name, see deep_emotion.data.READERS
    protocol: str = ""  # "" = the data set's default protocol
    seed: int = 0
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3  # Adam (paper)
    weight_decay: float = 0.0  # Adam's L2 on all weights
    fc_l2: float = 1e-3  # λ of the paper's λ·‖W‖² on the last two FC layers
    label_smoothing: float = 0.0
    schedule: str = "cosine"  # "cosine" (with warmup) or "constant"
    warmup_epochs: int = 2
    class_balance: bool = False  # weight the loss by inverse class frequency
    precision: str = "fp32"  # "bf16": autocast the forward pass while training (GPUs, CPUs with AVX512-BF16);
    # "fp16": autocast with a gradient scaler (GPUs only); evaluation stays fp32
    init_from: str = ""  # start from this checkpoint's weights (name or path); "" = the family's own init
    architecture: str = architectures.DEFAULT_ARCHITECTURE  # model family, see architectures.list_models()
    model: Any = None  # the family's config (ModelConfig for DeepEmotion); None = its defaults
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        try:
            config_class = architectures.family(self.architecture).config_class
        except ValueError as e:
            raise RecipeError(f"recipe {self.name}: {e}") from e
        if self.model is None:
            object.__setattr__(self, "model", config_class() if config_class else {})
        elif config_class and not isinstance(self.model, config_class):
            raise RecipeError(
                f"recipe {self.name}: architecture {self.architecture} takes a {config_class.__name__}, "
                f"not a {type(self.model).__name__}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where}: {e}") from e


def recipe_from_dict(data: dict[str, Any], where: str = "recipe") -> Recipe:
    data = dict(data)
    try:
        config_class = architectures.family(data.get("architecture", architectures.DEFAULT_ARCHITECTURE)).config_class
    except (ValueError, TypeError) as e:
        raise RecipeError(f"{where}: {e}") from e
    model_table = data.pop("model", {})
    model = _build(config_class, model_table, f"{where} [model]") if config_class else dict(model_table)
    aug = dict(data.pop("augment", {}))
    if "erase_area" in aug:
        aug["erase_area"] = tuple(aug["erase_area"])
    augment = _build(AugmentConfig, aug, f"{where} [augment]")
    recipe = _build(Recipe, {**data, "model": model, "augment": augment}, where)
    if recipe.schedule not in ("cosine", "constant"):
        raise RecipeError(f"{where}: schedule must be 'cosine' or 'constant', not {recipe.schedule!r}")
    if recipe.precision not in ("fp32", "bf16", "fp16"):
        raise RecipeError(f"{where}: precision must be 'fp32', 'bf16' or 'fp16', not {recipe.precision!r}")
    if recipe.epochs < 1 or recipe.batch_size < 1 or recipe.lr <= 0:
        raise RecipeError(f"{where}: epochs, batch_size and lr must be positive")
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    try:
        import tomllib  # Python 3.11+; the rest of the library also runs on 3.10 (ZeroGPU Spaces' Python)
    except ModuleNotFoundError as e:  # pragma: no cover - Python 3.10
        raise RecipeError("reading recipes needs Python 3.11 or later (tomllib)") from e
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as e:
        raise RecipeError(f"recipe {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"recipe {path} is not valid TOML: {e}") from e
    return recipe_from_dict(data, str(path))
