"""Deep-Emotion explorer, Gradio twin of webapp/app.py over the same pipeline and the same sentences.

Run: `python webapp/gradio_app.py` (serves on 0.0.0.0:7860, or $GRADIO_SERVER_PORT). On a ZeroGPU Space
(`make space-gradio`) the function that runs the networks holds a GPU while it runs (`spaces.GPU`); elsewhere
that decorator is absent and everything runs on the CPU.
"""

from __future__ import annotations

import os
from functools import lru_cache

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # torch's idle threads sleep, not spin (webapp/app.py)

import gradio as gr  # noqa: E402
import torch  # noqa: E402

try:  # Hugging Face's ZeroGPU: a GPU is attached while a decorated function runs
    import spaces
except ImportError:  # not on a Space: no decorator, the CPU
    spaces = None

from deep_emotion import (  # noqa: E402
    DEFAULT_METHODS,
    AnalysisOptions,
    DeepEmotionError,
    Pipeline,
    describe,  # noqa: E402
    list_explainers,
    load_image,
)
from deep_emotion.explain import render  # noqa: E402
from deep_emotion.serve.examples import example_photo_path  # noqa: E402

WHOLE_IMAGE = "Treat the whole image as the face"  # the Streamlit app's words


@lru_cache(maxsize=1)
def pipeline() -> Pipeline:
    """The one pipeline: every bundled model, calibrated as its card says, and the face detector. How many
    analyses run at once is the queue's business (`default_concurrency_limit`)."""
    return Pipeline.from_names(None)


def on_gpu(fn):
    """`spaces.GPU` on a ZeroGPU Space (60 s at most per call), the function itself elsewhere."""
    return spaces.GPU(duration=60)(fn) if spaces is not None else fn


@on_gpu
def run_networks(photo, chosen: list[str], options: AnalysisOptions, index: int):
    """The faces, the analysis of face `index` by every chosen model and every face's predictions, on the GPU
    when one is attached (the pipeline moves there inside this call, as ZeroGPU requires), else on the CPU."""
    pipe = pipeline().to("cuda" if torch.cuda.is_available() else "cpu")
    found = pipe.find_faces(photo, options.detect)
    if not found or not 0 <= index < len(found):
        return found, None, None
    return found, pipe.analyze(photo, chosen, options, faces=found, face_indices=[index]), pipe.predict(found, chosen)


def handle(
    image_path: str | None,
    chosen: list[str],
    methods: list[str],
    window: int,
    stride: int,
    faithfulness: bool,
    face_no: int,
    whole_image: bool,
):
    """Returns (photo with boxes, panel, top-class label of the first model, every face x model table, figures as
    JSON, message)."""
    empty = (None, None, None, None, None)
    if not image_path:
        return (*empty, "Upload a photo or pick the example.")
    if not chosen:
        return (*empty, "Choose at least one model.")
    try:
        pipe = pipeline()
        chosen = pipe.choose(list(chosen))
        options = AnalysisOptions(
            tuple(methods or ()), int(window), int(stride), None, bool(faithfulness), not whole_image
        )
        options.check(pipe.input_size)
        photo = load_image(image_path)
        index = int(face_no) - 1
        faces, result, predictions = run_networks(photo, chosen, options, index)
        if not faces:
            return (
                render.draw_boxes(photo, []),
                None,
                None,
                None,
                None,
                f"{describe.NO_FACE} Tick '{WHOLE_IMAGE}' to read all of it as one face.",
            )
        if result is None:
            return (
                render.draw_boxes(photo, [f.box for f in faces]),
                None,
                None,
                None,
                None,
                f"Face {face_no} does not exist: {len(faces)} face(s) found.",
            )
    except (DeepEmotionError, ValueError) as e:
        return (*empty, f"Error: {e}")
    face = result.faces[0]
    views = list(face.views.values())
    found = describe.faces_found(faces, asked_whole_image=whole_image)
    lines = ([found] if found else []) + [
        f"{len(faces)} face(s); face {face_no} of {len(faces)} explained by {len(views)} model(s)."
    ]
    consensus = pipe.consensus({v.model: v.probabilities for v in views})
    lines += describe.view_lines(views, consensus)
    lines += [describe.map_caption(v.model, m, options.window) for v in views for m in v.maps.values()]
    table = [
        [p.index + 1]
        + [f"{p.top(m)} {p.probabilities[m][p.top(m)]:.0%}" for m in chosen]
        + ([f"{p.consensus_top} {p.consensus[p.consensus_top]:.0%}"] if p.consensus else [])
        for p in predictions
    ]
    return (
        render.draw_boxes(photo, [f.box for f in faces], index, [p.majority for p in predictions]),
        render.panel(face, views, list(options.methods)),
        consensus or views[0].probabilities,
        {"headers": ["face"] + list(chosen) + (["consensus"] if consensus else []), "data": table},
        result.to_dict(),
        "\n\n".join(lines),
    )


def build() -> gr.Blocks:
    """The page; its choices come from the pipeline: the models (picker order, the defaults ticked), the maps
    registered, the window up to the models' input side and the stride up to half of it."""
    pipe = pipeline()
    side = pipe.input_size
    default = AnalysisOptions()
    with gr.Blocks(title="Deep-Emotion explorer") as demo:
        gr.Markdown(
            "# Deep-Emotion explorer\nWhat each model predicts, and where it looks (the STN's view, the "
            "paper's occlusion map, Captum's attributions, facial regions), with how faithful each map is."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", label="Photo", sources=["upload", "webcam"])
                chosen = gr.CheckboxGroup(
                    pipe.names,
                    value=pipe.default_models,
                    label="Models",
                    info="fer2013/ferplus: photos of every kind; ckplus/jaffe: posed lab "
                    "expressions; -wide: a wider network, more accurate, ~12x slower to "
                    "explain",
                )
                methods = gr.CheckboxGroup(
                    [(describe.method_title(n), n) for n in list_explainers()],
                    value=list(DEFAULT_METHODS),
                    label="Maps",
                )
                window = gr.Slider(
                    1,
                    side,
                    value=min(default.window, side),
                    step=1,
                    label=f"Occlusion window (pixels of the {side}x{side} face)",
                )
                stride = gr.Slider(
                    1, max(1, side // 2), value=min(default.stride, max(1, side // 2)), step=1, label="Stride"
                )
                faithfulness = gr.Checkbox(value=False, label="Score every map's faithfulness (about 3x the work)")
                face_no = gr.Number(value=1, precision=0, minimum=1, label="Face (1 = largest)")
                whole = gr.Checkbox(value=False, label=WHOLE_IMAGE)
                run = gr.Button("Analyse", variant="primary")
                gr.Examples([[str(example_photo_path())]], inputs=[image])
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
