"""Every bad input gets a clear answer: the library raises ImageLoadError, the CLI exits 2 with one line."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from deep_emotion.cli import main
from deep_emotion.errors import ImageLoadError
from deep_emotion.faces.images import MAX_BYTES, load_image

from .bad_inputs import unusable, usable

UNUSABLE, USABLE = unusable(), usable()


def test_corpus_is_large_enough():
    assert len(UNUSABLE) + len(USABLE) >= 30


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_unusable_bytes_are_refused(name):
    with pytest.raises(ImageLoadError) as err:
        load_image(UNUSABLE[name], name=name)
    assert str(err.value).startswith(name) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", sorted(USABLE))
def test_odd_images_load_as_rgb(name):
    im = load_image(USABLE[name], name=name)
    assert im.mode == "RGB" and im.width >= 1 and im.height >= 1


def test_exif_rotation_is_applied():
    im = load_image(USABLE["exif_rotated.jpg"])
    assert im.size == (60, 120)
    top, bottom = np.asarray(im)[10, 30], np.asarray(im)[110, 30]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200


def test_transparency_becomes_white_and_first_frame_is_used():
    assert np.asarray(load_image(USABLE["rgba_transparent.png"])).min() == 255
    assert tuple(np.asarray(load_image(USABLE["animated.gif"]))[5, 5]) == (255, 0, 0)
    assert tuple(np.asarray(load_image(USABLE["multipage.tiff"]))[5, 5]) == (255, 0, 0)


def test_16_bit_grey_keeps_its_range():
    a = np.asarray(load_image(USABLE["grey16.png"]))[..., 0]
    assert a.min() == 0 and a.max() == 255


def test_paths_missing_dir_and_oversized(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path)
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(ImageLoadError, match="larger than"):
        load_image(big)


@pytest.mark.parametrize("name", sorted(UNUSABLE)[:12])
def test_cli_exit_2_with_one_line(name, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(UNUSABLE[name])
    assert main(["predict", str(path), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and name in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["explain", "x.png", "--window", "0", "--out", "o"], "window must be between 1 and 48"),
        (["explain", "x.png", "--window", "49", "--out", "o"], "window must be between 1 and 48"),
        (["explain", "x.png", "--stride", "0", "--out", "o"], "stride must be at least 1"),
        (["explain", "x.png", "--stride", "-3", "--out", "o"], "stride must be at least 1"),
        (["predict", "x.png", "--model", "no-such"], "unknown model 'no-such'"),
    ],
)
def test_cli_bad_parameters(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_analyze_rejects_bad_parameters():
    from deep_emotion.models.paper import DeepEmotion
    from deep_emotion.pipeline import Pipeline
    from deep_emotion.results import AnalysisOptions

    from .conftest import EMOTIONS7, pipeline_of

    im = Image.new("RGB", (60, 60))
    with pytest.raises(ValueError, match="at least one model"):
        Pipeline({})
    pipe = pipeline_of({"m": (DeepEmotion().eval(), EMOTIONS7)})
    with pytest.raises(ValueError, match="at least one model"):
        pipe.analyze(im, models=[])
    with pytest.raises(ValueError, match="unknown model"):
        pipe.analyze(im, models="nope")
    with pytest.raises(ValueError, match="window must be between 1 and 48"):
        pipe.analyze(im, options=AnalysisOptions(window=0))
    with pytest.raises(ValueError, match="give an image or its faces"):
        pipe.analyze(None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        st.tuples(
            st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]),
            st.integers(1, 64),
            st.integers(1, 64),
            st.sampled_from(["PNG", "TIFF", "GIF", "BMP", "WEBP", "JPEG"]),
            st.integers(0, 400),
            st.integers(0, 255),
        ),
    )
)
def test_loader_returns_rgb_or_raises_its_own_error(data):
    if isinstance(data, tuple):  # a real image of a random mode and size, maybe truncated or with a flipped byte
        mode, w, h, fmt, cut, flip = data
        im = Image.new(mode, (w, h))
        buf = io.BytesIO()
        try:
            im.save(buf, format=fmt)
        except (OSError, ValueError, KeyError):
            return  # PIL cannot write this mode in this format: nothing to test
        raw = bytearray(buf.getvalue())
        if cut:
            raw = raw[: max(0, len(raw) - cut)]
        if raw and flip:
            raw[flip % len(raw)] ^= 0x5A
        data = bytes(raw)
    try:
        out = load_image(data)
    except ImageLoadError:
        return
    assert out.mode == "RGB" and out.width >= 1 and out.height >= 1


def test_concurrent_analyses_match_serial():
    """8 threads at once give the results of one after another (eval mode, no shared mutable state)."""
    import torch

    from deep_emotion.models.paper import DeepEmotion, ModelConfig
    from deep_emotion.results import DEFAULT_METHODS, AnalysisOptions

    from .conftest import EMOTIONS7, pipeline_of

    torch.manual_seed(0)
    model = DeepEmotion(ModelConfig()).eval()
    with torch.no_grad():
        model.stn.regressor[-1].bias.add_(0.05)  # a non-identity STN, so θ is checked too
    pipe = pipeline_of({"m": (model, EMOTIONS7)})  # one pipeline (and its model's lock) shared by every thread
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)) for _ in range(8)]

    def run(im):
        # every method, Grad-CAM's layer hooks included, while other threads use the same model
        options = AnalysisOptions(DEFAULT_METHODS + ("occlusion-drop",), 12, 6, detect=False, faithfulness=True)
        v = pipe.analyze(im, options=options).faces[0].views["m"]
        return np.stack([m.values for m in v.maps.values()]), v.theta, v.probabilities

    serial = [run(im) for im in images]
    results: list = [None] * 8
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, run(images[i]))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s, c in zip(serial, results):
        np.testing.assert_allclose(s[0], c[0], atol=1e-6)
        np.testing.assert_allclose(s[1], c[1], atol=1e-6)
        assert s[2] == pytest.approx(c[2], abs=1e-6)
