"""Deep-Emotion: the attentional convolutional network of Minaee & Abdolrashidi, with face finding and explanations."""

from .analysis import FacePrediction, classify, find_faces
from .architectures import EmotionModel, create_model, list_models, register_model
from .calibration import PostHoc
from .checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
from .data import FaceDataset, load_dataset
from .errors import CheckpointError, DataLayoutError, DeepEmotionError, ImageLoadError, RecipeError
from .faces import Face, Framing, crop_face, detect_faces
from .images import load_image
from .model import DeepEmotion, ModelConfig
from .recipe import Recipe, load_recipe

__version__ = "0.1.0"
__all__ = [
    "DeepEmotion", "ModelConfig", "FaceDataset", "load_dataset", "Recipe", "load_recipe",
    "load_checkpoint", "save_checkpoint", "list_checkpoints", "Face", "detect_faces", "crop_face",
    "load_image", "find_faces", "classify", "FacePrediction", "Framing", "PostHoc",
    "DeepEmotionError", "DataLayoutError", "ImageLoadError", "CheckpointError", "RecipeError",
    "EmotionModel", "create_model", "list_models", "register_model",
]
