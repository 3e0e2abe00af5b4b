import numpy as np
from PIL import Image

from deep_emotion.faces import crop_face, detect_faces, whole_image_face
from deep_emotion.images import load_image


def test_mtcnn_finds_exactly_one_face_in_astronaut(astronaut_path):
    faces = detect_faces(load_image(astronaut_path))
    assert len(faces) == 1
    (face,) = faces
    assert face.probability > 0.99 and face.crop.shape == (48, 48) and face.crop.dtype == np.uint8


def test_no_face_is_an_empty_list():
    assert detect_faces(Image.new("RGB", (300, 200), (90, 140, 200))) == []


def test_crop_is_square_with_margin():
    img = np.zeros((200, 200), np.uint8)
    img[50:150, 75:125] = 255  # a bright 50x100 box
    crop = crop_face(Image.fromarray(img).convert("RGB"), (75, 50, 125, 150), margin=0.0)
    # a square crop of side 100 around the box: the bright part is the middle half of the columns
    assert crop[24, 24] > 200 and crop[24, 5] < 50 and crop[24, 42] < 50


def test_whole_image_face():
    face = whole_image_face(Image.new("RGB", (64, 32), (255, 255, 255)))
    assert face.box == (0.0, 0.0, 64.0, 32.0) and face.crop.shape == (48, 48) and face.crop.min() == 255
