"""Training and measuring: recipes, the training loop (one process or DDP), evaluation, post-hoc calibration,
cross-validation, the photo protocol, and the data-set readers (`training.data`)."""

from deep_emotion.training.evaluation import evaluate, metrics
from deep_emotion.training.loop import train
from deep_emotion.training.recipe import Recipe, load_recipe

__all__ = ["Recipe", "load_recipe", "train", "evaluate", "metrics"]
