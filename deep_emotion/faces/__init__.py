"""Faces in pictures: reading pictures (`load_image`), finding faces (MTCNN with retries), framing them as the
training faces are framed (`Framing`, `crop_face`), and following them from frame to frame (`FaceTracker`)."""

from deep_emotion.faces.detect import (
    Detector,
    Face,
    detect_faces,
    detect_faces_batch,
    iou,
    largest_face_crop,
    looks_like_face_crop,
    or_whole_picture,
    use_detector_device,
    whole_image_face,
)
from deep_emotion.faces.framing import (
    DEFAULT_FRAMING,
    DEFAULT_MARGIN,
    FACE_CROP,
    LEGACY_FRAMING,
    Box,
    Framing,
    crop_face,
    eye_angle,
    landmarks_in_crop,
    square_in_photo,
)
from deep_emotion.faces.images import load_image
from deep_emotion.faces.tracking import FaceTracker, smoothing_weight

__all__ = [
    "load_image",
    "DEFAULT_FRAMING",
    "DEFAULT_MARGIN",
    "FACE_CROP",
    "LEGACY_FRAMING",
    "Box",
    "Framing",
    "crop_face",
    "eye_angle",
    "landmarks_in_crop",
    "square_in_photo",
    "Detector",
    "Face",
    "detect_faces",
    "detect_faces_batch",
    "iou",
    "largest_face_crop",
    "looks_like_face_crop",
    "or_whole_picture",
    "use_detector_device",
    "whole_image_face",
    "FaceTracker",
    "smoothing_weight",
]
