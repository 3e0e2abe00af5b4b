"""Deep-Emotion explorer, Gradio twin of webapp/app.py over the same analysis function.

Run: `python webapp/gradio_app.py` (serves on 0.0.0.0:7860).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import gradio as gr

from deep_emotion import explain, render
from deep_emotion.analysis import analyze, find_faces
from deep_emotion.checkpoints import default_models, list_checkpoints, load_checkpoint
from deep_emotion.classes import canonical
from deep_emotion.errors import DeepEmotionError
from deep_emotion.images import load_image

EXAMPLE = Path(__file__).parent / "examples" / "astronaut.jpg"


@lru_cache(maxsize=1)
def models() -> dict:
    return {name: load_checkpoint(name, posthoc=True) for name in list_checkpoints()}  # calibrated as carded


def handle(image_path: str | None, chosen: list[str], window: int, stride: int, mode: str, captum: bool,
           face_no: int, whole_image: bool):
    """Returns (photo with boxes, panel, top-class label of the first model, figures as JSON, message)."""
    empty = (None, None, None, None)
    if not image_path:
        return (*empty, "Upload a photo or pick the example.")
    if not chosen:
        return (*empty, "Choose at least one model.")
    try:
        explain.check_window(48, int(window), int(stride))
        photo = load_image(image_path)
        faces = find_faces(photo, detect=not whole_image)
        if not faces:
            return (render.draw_boxes(photo, []), None, None, None,
                    "No face was found. Tick 'whole image is the face' to classify the whole image.")
        index = int(face_no) - 1
        if not 0 <= index < len(faces):
            return (render.draw_boxes(photo, [f.box for f in faces]), None, None, None,
                    f"Face {face_no} does not exist: {len(faces)} face(s) found.")
        loaded = models()
        unknown = [m for m in chosen if m not in loaded]
        if unknown:
            raise ValueError(f"unknown model(s): {', '.join(unknown)}")
        result = analyze(photo, {m: loaded[m] for m in chosen}, int(window), int(stride), mode, captum,
                         faces=faces, face_indices=[index])
    except (DeepEmotionError, ValueError) as e:
        return (*empty, f"Error: {e}")
    face = result.faces[0]
    views = list(face.views.values())
    tops = {v.model: v.top for v in views}
    agree = "agree" if len({canonical(t) for t in tops.values()}) == 1 else "DISAGREE"
    message = f"{len(faces)} face(s); face {face_no}: models {agree} — " + "; ".join(f"{m}: {t}" for m, t in tops.items())
    if not whole_image and not faces[0].detected:
        message = "No face was found; the picture is small and square like a cut-out face, so all of it was read as one. " + message
    return (render.draw_boxes(photo, [f.box for f in faces], index), render.panel(face, views, mode),
            views[0].probabilities, result.to_dict(), message)


def build() -> gr.Blocks:
    loaded = models()
    names = list(loaded)
    with gr.Blocks(title="Deep-Emotion explorer") as demo:
        gr.Markdown("# Deep-Emotion explorer\nWhat each model predicts, and where it looks (STN view, the paper's "
                    "occlusion map, Captum Occlusion).")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", label="Photo", sources=["upload", "webcam"])
                chosen = gr.CheckboxGroup(names, value=default_models({n: card for n, (_, card) in loaded.items()}),
                                          label="Models", info="-wide: issue 8's wider network, ~12x slower to explain")
                window = gr.Slider(1, 48, value=8, step=1, label="Occlusion window")
                stride = gr.Slider(1, 24, value=2, step=1, label="Stride")
                mode = gr.Radio(list(explain.MODES), value="flip", label="Paper map")
                captum = gr.Checkbox(value=True, label="Captum Occlusion too")
                face_no = gr.Number(value=1, precision=0, minimum=1, label="Face (1 = largest)")
                whole = gr.Checkbox(value=False, label="Whole image is the face (no detection)")
                run = gr.Button("Analyse", variant="primary")
                gr.Examples([[str(EXAMPLE)]], inputs=[image])
            with gr.Column(scale=2):
                message = gr.Markdown()
                boxes = gr.Image(label="Faces found", type="pil")
                panel = gr.Image(label="face | STN view | paper map | Captum", type="pil")
                label = gr.Label(label="Probabilities (first model)")
                figures = gr.JSON(label="Figures")
        inputs = [image, chosen, window, stride, mode, captum, face_no, whole]
        outputs = [boxes, panel, label, figures, message]
        run.click(handle, inputs, outputs)
        for slider in (window, stride):  # re-compute when a slider is let go, not on every tick
            slider.release(handle, inputs, outputs)
        for control in (mode, captum):
            control.change(handle, inputs, outputs)
    return demo


if __name__ == "__main__":
    build().launch(server_name="0.0.0.0", server_port=7860)
