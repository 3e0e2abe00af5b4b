"""Deep-Emotion explorer, Gradio twin of webapp/app.py over the same analysis function.

Run: `python webapp/gradio_app.py` (serves on 0.0.0.0:7860, or $GRADIO_SERVER_PORT). On a ZeroGPU Space
(`make space-gradio`) the function that runs the networks holds a GPU while it runs (`spaces.GPU`); elsewhere
that decorator is absent and everything runs on the CPU.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch's idle threads sleep, not spin (webapp/app.py)

import gradio as gr  # noqa: E402
import torch

try:  # Hugging Face's ZeroGPU: a GPU is attached while a decorated function runs
    import spaces
except ImportError:  # not on a Space: no decorator, the CPU
    spaces = None

from deep_emotion import explain, faces as face_finder
from deep_emotion.explain import render
from deep_emotion.results import DEFAULT_METHODS, AnalysisOptions, analyze, find_faces, summarize
from deep_emotion.models.card import default_models, list_checkpoints, model_order
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.classes import canonical
from deep_emotion.errors import DeepEmotionError
from deep_emotion.faces.images import load_image

EXAMPLE = Path(__file__).parent / "examples" / "astronaut.jpg"


@lru_cache(maxsize=1)
def models() -> dict:
    return {name: load_checkpoint(name, posthoc=True) for name in list_checkpoints()}  # calibrated as carded


def on_gpu(fn):
    """`spaces.GPU` on a ZeroGPU Space (60 s at most per call), the function itself elsewhere."""
    return spaces.GPU(duration=60)(fn) if spaces is not None else fn


@on_gpu
def run_networks(photo, chosen: list[str], options: AnalysisOptions, index: int):
    """Detection and every chosen model's analysis of one face, on the GPU when one is attached (the models and
    MTCNN move there inside this call, as ZeroGPU requires), else on the CPU."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    face_finder.use_detector_device(device)
    loaded = {m: models()[m] for m in chosen}
    for model, _ in loaded.values():
        model.to(device)
    found = find_faces(photo, detect=options.detect)
    if not found or not 0 <= index < len(found):
        return found, None, None
    result = analyze(photo, loaded, options, faces=found, face_indices=[index])
    return found, result, summarize(found, loaded)


def handle(image_path: str | None, chosen: list[str], methods: list[str], window: int, stride: int,
           faithfulness: bool, face_no: int, whole_image: bool):
    """Returns (photo with boxes, panel, top-class label of the first model, every face x model table, figures as
    JSON, message)."""
    empty = (None, None, None, None, None)
    if not image_path:
        return (*empty, "Upload a photo or pick the example.")
    if not chosen:
        return (*empty, "Choose at least one model.")
    try:
        options = AnalysisOptions(tuple(methods or ()), int(window), int(stride), None, bool(faithfulness),
                                  not whole_image)
        options.check()
        photo = load_image(image_path)
        unknown = [m for m in chosen if m not in models()]
        if unknown:
            raise ValueError(f"unknown model(s): {', '.join(unknown)}")
        index = int(face_no) - 1
        faces, result, rows = run_networks(photo, list(chosen), options, index)
        if not faces:
            return (render.draw_boxes(photo, []), None, None, None, None,
                    "No face was found. Tick 'whole image is the face' to classify the whole image.")
        if result is None:
            return (render.draw_boxes(photo, [f.box for f in faces]), None, None, None, None,
                    f"Face {face_no} does not exist: {len(faces)} face(s) found.")
    except (DeepEmotionError, ValueError) as e:
        return (*empty, f"Error: {e}")
    face = result.faces[0]
    views = list(face.views.values())
    tops = {v.model: v.top for v in views}
    agree = "agree" if len({canonical(t) for t in tops.values()}) == 1 else "DISAGREE"
    lines = [f"{len(faces)} face(s); face {face_no}: models {agree} — " + "; ".join(f"{m}: {t}" for m, t in tops.items())]
    if not whole_image and not faces[0].detected:
        lines.insert(0, "No face was found; the picture is small and square like a cut-out face, so all of it was "
                        "read as one.")
    for v in views:
        if "regions" in v.maps:
            lines.append(f"{v.model}: {explain.region_sentence(v.maps['regions'], v.target)}")
        best = v.most_faithful()
        if best:
            lines.append(f"{v.model}: most faithful map for this face: {explain.EXPLAINERS[best].title}")
        lines += [f"{v.model}: {explain.EXPLAINERS[m].title} skipped — {why}" for m, why in v.skipped.items()]
    table = [[r["face"]] + [f"{r['models'][m]['top']} {r['models'][m]['probability']:.0%}" for m in chosen] for r in rows]
    return (render.draw_boxes(photo, [f.box for f in faces], index, [r["majority"] for r in rows]),
            render.panel(face, views, list(options.methods)), views[0].probabilities,
            {"headers": ["face"] + list(chosen), "data": table}, result.to_dict(), "\n\n".join(lines))


def build() -> gr.Blocks:
    loaded = models()
    cards = {n: card for n, (_, card) in loaded.items()}
    names = model_order(cards)
    with gr.Blocks(title="Deep-Emotion explorer") as demo:
        gr.Markdown("# Deep-Emotion explorer\nWhat each model predicts, and where it looks (the STN's view, the "
                    "paper's occlusion map, Captum's attributions, facial regions), with how faithful each map is.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", label="Photo", sources=["upload", "webcam"])
                chosen = gr.CheckboxGroup(names, value=default_models(cards), label="Models",
                                          info="fer2013/ferplus: photos of every kind; ckplus/jaffe: posed lab "
                                               "expressions; -wide: a wider network, more accurate, ~12x slower to explain")
                methods = gr.CheckboxGroup([(m.title, n) for n, m in explain.EXPLAINERS.items()],
                                           value=list(DEFAULT_METHODS), label="Maps")
                window = gr.Slider(1, 48, value=8, step=1, label="Occlusion window")
                stride = gr.Slider(1, 24, value=2, step=1, label="Stride")
                faithfulness = gr.Checkbox(value=False, label="Score every map's faithfulness (about 2x the work)")
                face_no = gr.Number(value=1, precision=0, minimum=1, label="Face (1 = largest)")
                whole = gr.Checkbox(value=False, label="Whole image is the face (no detection)")
                run = gr.Button("Analyse", variant="primary")
                gr.Examples([[str(EXAMPLE)]], inputs=[image])
            with gr.Column(scale=2):
                message = gr.Markdown()
                boxes = gr.Image(label="Faces found", type="pil")
                panel = gr.Image(label="Input, STN view and maps (one row per model)", type="pil")
                label = gr.Label(label="Probabilities (first model)")
                summary = gr.Dataframe(label="Every face, every chosen model", interactive=False)
                figures = gr.JSON(label="Figures")
        inputs = [image, chosen, methods, window, stride, faithfulness, face_no, whole]
        outputs = [boxes, panel, label, summary, figures, message]
        run.click(handle, inputs, outputs)
        for slider in (window, stride):  # re-compute when a slider is let go, not on every tick
            slider.release(handle, inputs, outputs)
        for control in (methods, faithfulness):
            control.change(handle, inputs, outputs)
    return demo


if __name__ == "__main__":
    # two analyses at once by default, as the Streamlit app (DEEP_EMOTION_WORKERS, measured there): more would only
    # share a small CPU's cores; queued, they finish in order
    workers = max(1, int(os.environ.get("DEEP_EMOTION_WORKERS", "2")))
    port = int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    build().queue(default_concurrency_limit=workers).launch(server_name="0.0.0.0", server_port=port)
