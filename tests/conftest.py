"""Shared fixtures: a private cache directory, generated images, the public-domain astronaut photo."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DEEP_EMOTION_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / "astronaut.png"


@pytest.fixture
def data_root() -> Path:
    root = os.environ.get("DEEP_EMOTION_DATA")
    if not root:
        pytest.skip("DEEP_EMOTION_DATA is not set: the real data sets are not available")
    return Path(root)


def pattern_face(kind: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A learnable synthetic 'face': class 0 horizontal stripes, 1 vertical stripes, 2 a bright centre blob."""
    yy, xx = np.mgrid[0:size, 0:size]
    if kind == 0:
        img = 0.5 + 0.4 * np.sin(yy / 2.0)
    elif kind == 1:
        img = 0.5 + 0.4 * np.sin(xx / 2.0)
    else:
        img = 0.2 + 0.7 * np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 6) ** 2))
    img = img + rng.normal(0, 0.05, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture
def pattern_folder(tmp_path) -> Path:
    """A generic <class>/<image> folder of 3 learnable classes, 60 images each."""
    rng = np.random.default_rng(0)
    root = tmp_path / "patterns"
    for name in ["blob", "horizontal", "vertical"]:
        (root / name).mkdir(parents=True)
        kind = {"blob": 2, "horizontal": 0, "vertical": 1}[name]
        for i in range(60):
            Image.fromarray(pattern_face(kind, rng)).save(root / name / f"{i:03d}.png")
    return root


EMOTIONS7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def loaded_model(model, classes=EMOTIONS7, name: str = "m", dataset: str = "folder"):
    """A network built here (no weight file) with a card naming `classes`: what `load_checkpoint` returns."""
    from deep_emotion.models.card import ModelCard
    from deep_emotion.models.checkpoints import LoadedModel
    from deep_emotion.models.registry import architecture_name

    card = ModelCard.from_dict(
        {
            "name": name,
            "dataset": dataset,
            "classes": list(classes),
            "architecture": architecture_name(model),
            "model_config": model.config.to_dict(),
        },
        source=f"{name} (built in a test)",
    )
    return LoadedModel(model, card)


def pipeline_of(models: dict, detector=None):
    """A `Pipeline` of networks built here: {name: (model, classes)} or {name: LoadedModel}."""
    from deep_emotion.models.checkpoints import LoadedModel
    from deep_emotion.pipeline import Pipeline

    return Pipeline(
        {name: m if isinstance(m, LoadedModel) else loaded_model(m[0], m[1], name) for name, m in models.items()},
        detector,
    )


# --- the static Space (web/): built once per run, served as Hugging Face serves it --------------------------


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory) -> Path:
    """Every shipped model and MTCNN exported to ONNX, with models.json."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is installed by `make install-test`")
    pytest.importorskip("onnxscript", reason="onnxscript (the ONNX exporter's) is installed by `make install-test`")
    from deep_emotion.serve.onnx_export import export_all

    out = tmp_path_factory.mktemp("onnx")
    export_all(out)
    return out


@pytest.fixture(scope="session")
def chromium_path() -> str:
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Debian's chromium is not installed (`make install-test` installs it as root)")
    pytest.importorskip("playwright.sync_api", reason="playwright is installed by `make install-test`")
    return path


@pytest.fixture(scope="session")
def site(onnx_dir, tmp_path_factory):
    """(base URL, folder) of the built page, served with the Space's cross-origin isolation headers."""
    import sys

    web = Path(__file__).resolve().parent.parent / "web"
    if not (web / "node_modules" / "onnxruntime-web").is_dir():
        pytest.skip("onnxruntime-web is not installed: `make install-test` runs `npm ci` in web/")
    sys.path.insert(0, str(web))
    import build
    import serve

    out = build.build(tmp_path_factory.mktemp("site") / "space", exported=onnx_dir)
    server = serve.start(out)
    yield f"http://127.0.0.1:{server.server_address[1]}", out
    server.shutdown()
