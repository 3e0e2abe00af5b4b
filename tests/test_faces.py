import numpy as np
import pytest
from PIL import Image

from deep_emotion.faces.detect import detect_faces, whole_image_face
from deep_emotion.faces.framing import crop_face
from deep_emotion.faces.images import load_image


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


# --- framing rules -------------------------------------------------------------------------------------------

from deep_emotion.faces import (  # noqa: E402
    DEFAULT_FRAMING,
    LEGACY_FRAMING,
    Framing,
    eye_angle,
    looks_like_face_crop,
    or_whole_picture,
    square_in_photo,
)
from deep_emotion.faces import crop_face as _crop  # noqa: E402


def _ramp(w: int = 200, h: int = 160) -> Image.Image:
    """A photo with no black pixel anywhere (values 60..250), so black in a crop can only be padding."""
    yy, xx = np.mgrid[0:h, 0:w]
    return Image.fromarray((60 + (xx * 120 // w + yy * 70 // h)).astype(np.uint8)).convert("RGB")


def test_square_near_the_edge_is_shifted_inside_not_padded_black():
    photo = _ramp()
    box = (150.0, 40.0, 198.0, 100.0)  # a face at the right edge: its margin runs past the photo
    legacy = _crop(photo, box, framing=LEGACY_FRAMING)
    inside = _crop(photo, box, framing=DEFAULT_FRAMING)
    assert (legacy < 30).mean() > 0.05  # the old pipeline: a black band
    assert inside.min() >= 55  # now: only the photo's own pixels
    cx, cy, side = square_in_photo(box, photo.size, 0.1)
    assert side == pytest.approx(60 * 1.2) and cx + side / 2 <= 200 and cy - side / 2 >= 0


def test_square_shrinks_to_fit_a_small_photo_but_not_below_the_face():
    cx, cy, side = square_in_photo((10, 10, 90, 90), (100, 100), margin=0.3)  # 80 * 1.6 = 128 > 100
    assert side == pytest.approx(100) and (cx, cy) == (50, 50)
    cx, cy, side = square_in_photo((-20, 0, 110, 130), (100, 100), margin=0.1)  # the face itself is cut off
    assert side == pytest.approx(130) and (cx, cy) == (45, 65)  # kept on the face; the crop pads
    cx, cy, side = square_in_photo((-20, 0, 110, 130), (100, 100), margin=0.1, below_face=True)
    assert side == pytest.approx(100) and (cx, cy) == (50, 50)
    # cut off on one axis only: shifted inside on the other
    cx, cy, side = square_in_photo((950, -10, 1010, 110), (1000, 100), margin=0.0)
    assert side == pytest.approx(120) and cx == pytest.approx(940) and cy == pytest.approx(50)


def test_cut_off_face_pads_with_edge_pixels_or_black():
    photo = _ramp(100, 100)
    box = (-20.0, 0.0, 110.0, 130.0)
    assert _crop(photo, box, framing=Framing(pad="edge")).min() >= 55
    assert _crop(photo, box, framing=Framing(pad="black")).min() < 10
    assert _crop(photo, box, framing=Framing(pad="none")).min() >= 55


def test_degenerate_and_outside_boxes_do_not_crash():
    photo = _ramp(64, 48)
    for box in [(10, 10, 10, 10), (-500, -500, -400, -400), (1000, 5, 1100, 90), (0, 0, 1e4, 1e4)]:
        for framing in (DEFAULT_FRAMING, LEGACY_FRAMING, Framing(align=True, align_above=0)):
            crop = _crop(photo, box, framing=framing, landmarks=np.array([[1e6, -1e6], [5, 5], [0, 0], [0, 0], [0, 0]]))
            assert crop.shape == (48, 48) and crop.dtype == np.uint8


def test_eye_angle():
    assert eye_angle(None) == 0.0
    assert eye_angle(np.array([[10, 20], [30, 20], [0, 0], [0, 0], [0, 0]])) == pytest.approx(0)
    # right eye higher in the picture (smaller y): the eye line rises, counter-clockwise
    assert eye_angle(np.array([[10, 20], [30, 0], [0, 0], [0, 0], [0, 0]])) == pytest.approx(45)
    assert eye_angle(np.array([[np.nan, 1], [3, 4], [0, 0], [0, 0], [0, 0]])) == 0.0


def test_alignment_levels_the_eyes(astronaut_path):
    """The astronaut turned by 20 degrees: with `align` the crop matches the upright crop far better."""
    photo = load_image(astronaut_path)
    upright = detect_faces(photo, framing=Framing(align=True, align_above=0))[0]
    turned = photo.rotate(20, Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    plain = detect_faces(turned)[0]
    aligned = detect_faces(turned, framing=Framing(align=True, align_above=0))[0]
    assert abs(aligned.angle - 20 - upright.angle) < 6  # the eye line was turned by 20 degrees
    err = lambda f: np.abs(f.crop.astype(float) - upright.crop).mean()  # noqa: E731
    assert err(aligned) < 0.6 * err(plain)


def test_context_retry_finds_a_face_that_fills_the_picture(astronaut_path):
    photo = load_image(astronaut_path)
    x0, y0, x1, y1 = detect_faces(photo)[0].box
    w, h = x1 - x0, y1 - y0
    tight = photo.crop((round(x0 + 0.15 * w), round(y0 + 0.15 * h), round(x1 - 0.15 * w), round(y1 - 0.15 * h)))
    tight = tight.resize((96, 96))
    assert detect_faces(tight, framing=LEGACY_FRAMING) == []  # MTCNN alone misses it
    (face,) = detect_faces(tight)
    assert face.crop.shape == (48, 48)
    bx0, by0, bx1, by1 = face.box
    assert bx0 < 48 < bx1 and by0 < 48 < by1  # on the picture's face, mapped back from the padded copy ...
    assert bx0 < 0 or by0 < 0 or bx1 > 96 or by1 > 96  # ... which alone can give a box past the picture's edge


def test_whole_picture_fallback_only_for_small_square_textured_pictures():
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (120, 110, 3), dtype=np.uint8))
    assert looks_like_face_crop(noisy)
    (face,) = or_whole_picture(noisy, [])
    assert not face.detected and face.box == (0.0, 0.0, 110.0, 120.0)
    assert or_whole_picture(Image.new("RGB", (120, 120), (90, 90, 90)), []) == []  # flat: not a face
    assert or_whole_picture(noisy.resize((600, 600)), []) == []  # large: a photo, not a crop
    assert or_whole_picture(noisy.resize((300, 150)), []) == []  # not square
    found = [whole_image_face(noisy)]
    assert or_whole_picture(noisy, found) is found


def test_framing_card_round_trip_and_legacy_cards():
    for f in (DEFAULT_FRAMING, LEGACY_FRAMING, Framing(align=True, pad="none", margin=0.2)):
        assert Framing.from_card(f.card()) == f
    old = {"detector": "facenet-pytorch 2.5.3 MTCNN", "margin": 0.1, "square": True}
    assert Framing.from_card(old) == LEGACY_FRAMING
    with pytest.raises(ValueError):
        Framing(pad="mirror")


def test_faces_found_in_a_turned_copy_are_turned_back(astronaut_path):
    """The rotated retry's geometry: a face found in a copy turned by ±30 degrees lands where the upright
    search puts it (centre and landmarks), and alignment reads the true tilt."""
    from deep_emotion.faces.detect import _detection_copy, _faces_from, _run_mtcnn, _turned, _turned_copy

    photo = load_image(astronaut_path)
    upright = detect_faces(photo, framing=Framing(align=True, align_above=0))[0]
    for angle in (30.0, -30.0):
        small, scale = _detection_copy(photo)
        turned = _turned_copy(small, angle)
        (face,) = _faces_from(
            photo,
            _run_mtcnn([turned])[0],
            _turned(angle, turned.size, small.size, scale),
            scale,
            Framing(align=True, align_above=0),
            0.9,
        )
        assert np.abs(face.landmarks - upright.landmarks).max() < 6
        centre = lambda b: np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])  # noqa: E731
        assert np.abs(centre(face.box) - centre(upright.box)).max() < 8
        assert abs(face.angle - upright.angle) < 3


def test_the_shipped_framing_turns_only_the_tilt_beyond_ten_degrees(astronaut_path):
    photo = load_image(astronaut_path)
    upright = detect_faces(photo)[0]
    assert abs(eye_angle(upright.landmarks)) < 10 and upright.angle == 0.0  # a natural tilt is kept
    turned = detect_faces(photo.rotate(25, Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128)))[0]
    tilt = eye_angle(turned.landmarks)
    assert tilt > 15 and turned.angle == pytest.approx(tilt - 10)  # turned back to a 10-degree tilt
    assert DEFAULT_FRAMING.turn(np.array([[0, 0], [10, -1], [0, 0], [0, 0], [0, 0]])) == 0.0


def test_detector_holds_the_settings_the_pipeline_uses(astronaut_path):
    from deep_emotion.faces.detect import Detector

    photo = load_image(astronaut_path)
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 255, (120, 110, 3), dtype=np.uint8))  # small, square, no face
    found = Detector().batch([photo, noisy])
    assert [len(f) for f in found] == [1, 1] and found[0][0].detected and not found[1][0].detected
    assert found[0][0].box == pytest.approx(detect_faces(photo)[0].box)  # the functions underneath
    assert Detector(whole_picture=False)(noisy) == []  # no whole-picture read (video frames, the photo protocol)
    (whole,) = Detector()(photo, detect=False)
    assert not whole.detected and whole.box == (0.0, 0.0, float(photo.width), float(photo.height))
    legacy = Detector(framing=LEGACY_FRAMING)(photo)[0]
    assert np.array_equal(legacy.crop, detect_faces(photo, framing=LEGACY_FRAMING)[0].crop)
