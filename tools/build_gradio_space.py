"""Assemble a Gradio Space for ZeroGPU (free for personal accounts: up to 2 such Spaces): `make space-gradio`
writes space-gradio/ — app.py (the Gradio twin, its networks under `spaces.GPU`), the library, the checkpoints,
the example photo, requirements.txt pinned to versions ZeroGPU supports, and README.md with the Space's front
matter. Push the folder to a new Space and pick "ZeroGPU" as its hardware in the Space's settings.

    python tools/build_gradio_space.py [OUT]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ZeroGPU's supported versions (huggingface/hub-docs, docs/hub/spaces-zerogpu.md, read 2026-11-29): Gradio 4+,
# PyTorch 2.1.0 ... 2.8.0 (not 2.3.x), Python 3.10.13; torch.compile is not supported there.
PYTHON = "3.10.13"
REQUIREMENTS = """# pinned for ZeroGPU (tools/build_gradio_space.py); gradio itself: sdk_version in README.md
torch==2.8.0
torchvision==0.23.0
facenet-pytorch==2.5.3
captum
safetensors
tqdm
numpy<2.3
pillow
matplotlib
pandas
spaces
"""


def readme(gradio_version: str) -> str:
    return f"""---
title: Deep-Emotion explorer (ZeroGPU)
emoji: 🙂
colorFrom: indigo
colorTo: pink
sdk: gradio
sdk_version: {gradio_version}
python_version: {PYTHON}
app_file: app.py
pinned: false
license: mit
short_description: Facial expressions, an attentional CNN, and where it looks
---

# Deep-Emotion explorer on ZeroGPU

The Gradio twin of the Deep-Emotion app: each model's prediction for every face, the spatial transformer's view,
the paper's occlusion map, Captum's attributions and facial regions, with each map's faithfulness. The function
that runs the networks holds a GPU while it runs (`@spaces.GPU`); choose **ZeroGPU** as this Space's hardware.
Built by `make space-gradio` from the Deep-Emotion project (models, cards and evaluation protocols: its README).
"""


def build(out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "deep_emotion", out / "deep_emotion", ignore=ignore)
    shutil.copytree(ROOT / "checkpoints", out / "checkpoints", ignore=shutil.ignore_patterns("*.png"))
    (out / "webapp" / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "webapp" / "examples" / "astronaut.jpg", out / "webapp" / "examples" / "astronaut.jpg")
    # the twin is one file (the Streamlit pages are not needed); it finds the example through the library
    # (deep_emotion.serve.examples: webapp/examples/ beside the deep_emotion folder)
    shutil.copy(ROOT / "webapp" / "gradio_app.py", out / "app.py")
    (out / "requirements.txt").write_text(REQUIREMENTS)
    import gradio  # the version the twin is tested with here

    (out / "README.md").write_text(readme(gradio.__version__))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, nargs="?", default=ROOT / "space-gradio")
    print(build(ap.parse_args().out))


if __name__ == "__main__":
    main()
