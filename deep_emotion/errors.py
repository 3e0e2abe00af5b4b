"""The project's own error types: every bad input ends in one of these, with a message for people."""


class DeepEmotionError(Exception):
    """Base class of every error the library raises on purpose."""


class DataLayoutError(DeepEmotionError):
    """A data directory does not have the layout a reader expects."""


class ImageLoadError(DeepEmotionError):
    """An image file cannot be read or is unusable."""


class CheckpointError(DeepEmotionError):
    """A checkpoint file or its model card is missing, corrupt or inconsistent."""


class RecipeError(DeepEmotionError):
    """A training recipe has unknown keys or bad values."""
