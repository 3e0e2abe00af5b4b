"""ONNX files for in-browser inference (onnxruntime-web): every shipped model and MTCNN's three networks.

An emotion model's graph takes faces (N, 1, 48, 48) in [0, 1] and returns what the app shows: the probabilities
after the card's post-hoc corrections (flip averaging, logit adjustment, temperature), the STN's θ (N, 2, 3) and
its warped view (N, 1, 48, 48) in [0, 1]. A paper model also ships that graph in three parts, which the page's
occlusion maps use to recompute only what a window changes (explain/incremental.py, taken one stage further in
web/src/incremental.js): the STN's first stage on faces or crops of any size, its second stage on (regions of) the
first's output, and the probabilities given the second. MTCNN's P-Net takes any image size
(N, 3, H, W), R-Net 24x24 and O-Net 48x48 crops, all as pixel values 0-255 (the (x - 127.5) / 128 scaling is
inside the graph); their outputs are facenet-pytorch's, in its order. Weights are read without pickle
(safetensors for ours; MTCNN's ship inside facenet-pytorch and are loaded by it).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from deep_emotion.models.card import list_checkpoints, read_card, resolve
from deep_emotion.models.checkpoints import load_checkpoint
from deep_emotion.models.fold import graph_form
from deep_emotion.models.paper import affine_grid
from deep_emotion.models.posthoc import flip_average

OPSET = 18
MAX_BATCH = 4096


class EmotionGraph(torch.nn.Module):
    """Probabilities (post-hoc corrected), θ and the STN view of a model, as one graph."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        probabilities = F.softmax(self.model(face), dim=-1)
        view = self.model.stn_view(face)
        if view is None:  # a family without STN: the identity warp
            n = face.shape[0]
            theta = torch.eye(2, 3, dtype=face.dtype).expand(n, 2, 3)
            return probabilities, theta, face
        warped, theta = view
        return probabilities, theta, warped


class StageOne(torch.nn.Module):
    """The STN's first conv, ReLU and pool on faces (N, 1, H, W) in [0, 1]: (N, 8, H/2 - 3, W/2 - 3) for even sides.
    An occluded copy's first stage equals the face's but for an (window/2 + 4)^2 patch, computed from a crop."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        return self.model.stn.stage1(self.model.normalize(face))


class StageTwo(torch.nn.Module):
    """The STN's second conv, ReLU and pool on (part of) its first stage's output (N, 8, s, s): (N, 10, (s - 4) // 2,
    (s - 4) // 2); 8x8 for the whole 21x21. A window changes a patch of it too, computed from a region of stage 1."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, stage1: torch.Tensor) -> torch.Tensor:
        return self.model.stn.features[3:-1](stage1)  # graph_form's order: conv, ReLU, pool (no Flatten)


class FromStageTwo(torch.nn.Module):
    """EmotionGraph's probabilities of faces (N, 1, 48, 48) whose STN second stage is given (StageTwo's output), and
    with flip averaging that of the mirrored faces: the rest of the network, post-hoc corrections included."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.mirrored = bool(model.posthoc is not None and model.posthoc.tta_flip)

    def logits(self, face: torch.Tensor, stage2: torch.Tensor) -> torch.Tensor:
        m = self.model
        theta = m.stn.regressor(stage2.flatten(1)).view(-1, 2, 3)
        return m.classify(m.stn.warp(m.normalize(face), theta))

    def forward(
        self, face: torch.Tensor, stage2: torch.Tensor, stage2_mirrored: torch.Tensor | None = None
    ) -> torch.Tensor:
        post = self.model.posthoc
        logits = self.logits(face, stage2)
        if self.mirrored:
            logits = flip_average(logits, self.logits(face.flip(-1), stage2_mirrored))
        return F.softmax(logits if post is None else post.adjust(logits), dim=-1)


class Scaled(torch.nn.Module):
    """An MTCNN network on 0-255 pixels: (x - 127.5) * 0.0078125 first, as facenet-pytorch's detect_face does."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        return self.net((x - 127.5) * 0.0078125)


def _export(
    module: torch.nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[int, Any] | tuple[dict[int, Any], ...],
) -> None:
    """`module` as ONNX at `path`; `example` and `dynamic` (the dynamic axes) one per input."""
    examples = example if isinstance(example, tuple) else (example,)
    dynamics = dynamic if isinstance(dynamic, tuple) else (dynamic,)
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            examples,
            dynamo=True,
            optimize=True,
            verbose=False,
            input_names=inputs,
            output_names=outputs,
            opset_version=OPSET,
            dynamic_shapes=dynamics,
        )
    program.save(str(path), external_data=False)


def export_model(name: str, path: Path) -> dict[str, Any]:
    """One shipped model (post-hoc corrections included) as ONNX; returns what the page needs to know of it."""
    model, card = load_checkpoint(name, posthoc=True)
    graph_form(model)  # the paper network's layers as ONNX Runtime Web runs them fastest (the same function)
    batch = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    with torch.no_grad():
        graph, example = EmotionGraph(model), torch.rand(2, 1, 48, 48)
        _export(graph, example, path, ["face"], ["probabilities", "theta", "view"], batch)
    return {
        "name": name,
        "file": path.name,
        "classes": list(card.classes),
        "labels": list(card.labels),
        "dataset": card.dataset,
        "test_accuracy": None if card.test is None else card.test.accuracy,
        "protocol": card.protocol_note or card.protocol,
        "architecture": card.architecture,
        "posthoc": bool(card.posthoc),
        "incremental": export_incremental(model, path),
    }


@torch.no_grad()
def export_incremental(model: torch.nn.Module, path: Path) -> dict[str, Any] | None:
    """A paper model's graph in three parts beside `path` (<stem>.stage1.onnx and <stem>.stage2.onnx, the STN's two
    conv stages, and <stem>.rest.onnx, the rest given the second) and their entry for models.json; None for other
    models (a wide model's STN is a small share of its work, not worth a second copy of its weights to download; the
    paper network's two STN convs are two fifths of its work)."""
    if getattr(model, "stn", None) is None or model.config.stages:
        return None
    stem = path.name.removesuffix(".onnx")
    batch = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    side = torch.export.Dim("side", min=8, max=4096)
    _export(
        StageOne(model),
        torch.rand(2, 1, 22, 22),
        path.with_name(f"{stem}.stage1.onnx"),
        ["face"],
        ["stage1"],
        {**batch, 2: side, 3: side},
    )
    stage1 = model.stn.stage1(model.normalize(torch.rand(2, 1, 48, 48)))
    region = torch.export.Dim("region", min=6, max=4096)
    _export(
        StageTwo(model),
        stage1[:, :, :16, :16].contiguous(),
        path.with_name(f"{stem}.stage2.onnx"),
        ["stage1"],
        ["stage2"],
        {**batch, 2: region, 3: region},
    )
    rest = FromStageTwo(model)
    stage2 = StageTwo(model)(stage1)
    examples = (torch.rand(2, 1, 48, 48), stage2, stage2.clone())[: 3 if rest.mirrored else 2]  # not aliased
    _export(
        rest,
        examples,
        path.with_name(f"{stem}.rest.onnx"),
        ["face", "stage2", "stage2_mirrored"][: len(examples)],
        ["probabilities"],
        (batch,) * len(examples),
    )
    first, second = model.stn.features[0], model.stn.features[3]
    return {
        "stage1": f"{stem}.stage1.onnx",
        "stage2": f"{stem}.stage2.onnx",
        "rest": f"{stem}.rest.onnx",
        "weights": export_kernel_weights(model, path.with_name(f"{stem}.net.safetensors")),
        "mirrored": rest.mirrored,
        "mean": model.config.mean,
        "std": model.config.std,
        "kernel": first.kernel_size[0],
        "channels": first.out_channels,
        "kernel2": second.kernel_size[0],
        "channels2": second.out_channels,
    }


# the paper network in graph form, as web/src/paper-net.js runs it: its layers' types in order
PAPER_FEATURES = ("Composed", "ReLU", "MaxPool2d", "Conv2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten")
PAPER_STN = ("Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten")


@torch.no_grad()
def export_kernel_weights(model: torch.nn.Module, path: Path) -> str | None:
    """The weights the page's own kernels (web/kernels/layers.ts, driven by web/src/paper-net.js) take for the
    three incremental parts of a paper model in graph form, as safetensors at `path`: the STN's convs and
    regressor, the composed first feature conv and the two after it, fc1, fc2, the sampling grid's pixel centres
    (the exported graph's own numbers) and the post-hoc shift (tau x log prior) and temperature. None (no file)
    for a network of another layout, whose maps then run on the exported graphs."""
    from safetensors.torch import save_file

    def kinds(layers: torch.nn.Sequential) -> tuple[str, ...]:
        return tuple(type(m).__name__ for m in layers)

    side = model.config.input_size
    if kinds(model.features) != PAPER_FEATURES or kinds(model.stn.features) != PAPER_STN or side != 48:
        return None  # paper-net.js knows this layout only, at 48x48
    f, s = model.features, model.stn
    pools = [m for m in [*f, *s.features] if isinstance(m, torch.nn.MaxPool2d)]
    sizes = (f[0].kernel_size, f[3].kernel_size, f[4].kernel_size, s.features[0].kernel_size, s.features[3].kernel_size)
    if any(p.kernel_size != 2 or p.stride != 2 for p in pools) or sizes != ((5, 5), (3, 3), (3, 3), (7, 7), (5, 5)):
        return None  # its sizes: 48 -> 44 -> 22 -> 20 -> 18 -> 9 and 48 -> 42 -> 21 -> 17 -> 8
    layers = {
        "stn.conv1": s.features[0],
        "stn.conv2": s.features[3],
        "stn.fc1": s.regressor[0],
        "stn.fc2": s.regressor[2],
        "features.conv1": f[0],
        "features.conv2": f[3],
        "features.conv3": f[4],
        "fc1": model.fc1,
        "fc2": model.fc2,
    }
    tensors = {}
    for name, layer in layers.items():
        tensors[f"{name}.weight"] = layer.weight.detach().float().contiguous()
        tensors[f"{name}.bias"] = layer.bias.detach().float().contiguous()
    tensors["grid.centres"] = affine_grid(torch.eye(2, 3)[None], side, side)[0, 0, :, 0].contiguous()  # x of row 0
    post = model.posthoc
    if post is not None and post.tau != 0:
        tensors["posthoc.shift"] = post.tau * torch.tensor(post.log_prior, dtype=torch.float32)  # as PostHoc.adjust
    if post is not None and post.temperature != 1:
        tensors["posthoc.temperature"] = torch.tensor([post.temperature], dtype=torch.float32)
    save_file(tensors, str(path))
    path.chmod(0o644)  # readable by whoever serves the page
    return path.name


def mtcnn_networks() -> dict[str, torch.nn.Module]:
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet  # weights ship inside the package

    return {"pnet": PNet(), "rnet": RNet(), "onet": ONet()}


def export_mtcnn(folder: Path) -> dict[str, str]:
    nets = mtcnn_networks()
    size = torch.export.Dim
    with torch.no_grad():
        _export(
            Scaled(nets["pnet"]),
            torch.rand(1, 3, 60, 80) * 255,
            folder / "pnet.onnx",
            ["image"],
            ["regression", "probabilities"],
            {0: size("n", min=1, max=64), 2: size("height", min=12, max=4096), 3: size("width", min=12, max=4096)},
        )
        _export(
            Scaled(nets["rnet"]),
            torch.rand(2, 3, 24, 24) * 255,
            folder / "rnet.onnx",
            ["image"],
            ["regression", "probabilities"],
            {0: size("n", min=1, max=MAX_BATCH)},
        )
        _export(
            Scaled(nets["onet"]),
            torch.rand(2, 3, 48, 48) * 255,
            folder / "onet.onnx",
            ["image"],
            ["regression", "landmarks", "probabilities"],
            {0: size("n", min=1, max=MAX_BATCH)},
        )
    return {k: f"{k}.onnx" for k in nets}


# MTCNN's networks as web/src/mtcnn-net.js runs them: layers in order (the heads' layers joined into one, "head"),
# and the outputs as [name, first, last channel of the head, "softmax" where the graph has one]
_RO = "conv1 prelu1 pool:3 conv2 prelu2 pool:3 conv3 prelu3"  # the first layers of R-Net and O-Net
MTCNN_LAYERS = {
    "pnet": "conv1 prelu1 pool:2 conv2 prelu2 conv3 prelu3 head".split(),
    "rnet": f"{_RO} flatten dense4 prelu4 head".split(),
    "onet": f"{_RO} pool:2 conv4 prelu4 flatten dense5 prelu5 head".split(),
}
MTCNN_HEADS = {
    "pnet": (["conv4_2", "conv4_1"], [["regression", 0, 4], ["probabilities", 4, 6, "softmax"]]),
    "rnet": (["dense5_2", "dense5_1"], [["regression", 0, 4], ["probabilities", 4, 6, "softmax"]]),
    "onet": (
        ["dense6_2", "dense6_3", "dense6_1"],
        [["regression", 0, 4], ["landmarks", 4, 14], ["probabilities", 14, 16, "softmax"]],
    ),
}


@torch.no_grad()
def export_mtcnn_weights(folder: Path) -> dict[str, str]:
    """MTCNN's three networks for the page's own kernels (web/src/mtcnn-net.js), as <net>.net.safetensors: the
    layers' weights under facenet-pytorch's names, the heads joined into one layer ("head"), the first dense layer's
    columns put in the order of a flattened (C, H, W) map (facenet-pytorch flattens (W, H, C)), and the layer list,
    outputs and input scaling in the metadata."""
    from safetensors.torch import save_file

    files = {}
    for name, net in mtcnn_networks().items():
        tensors = {k: v.float().contiguous() for k, v in net.state_dict().items()}
        parts, outputs = MTCNN_HEADS[name]
        tensors["head.weight"] = torch.cat([tensors.pop(f"{p}.weight") for p in parts])
        tensors["head.bias"] = torch.cat([tensors.pop(f"{p}.bias") for p in parts])
        layers = MTCNN_LAYERS[name]
        if "flatten" in layers:  # the dense layer after it reads (W, H, C); ours gives (C, H, W)
            dense = layers[layers.index("flatten") + 1]
            last = [m for m in net.children() if isinstance(m, torch.nn.Conv2d)][-1].out_channels
            w = tensors[f"{dense}.weight"]
            side = round((w.shape[1] / last) ** 0.5)
            tensors[f"{dense}.weight"] = (
                w.view(-1, side, side, last).permute(0, 3, 2, 1).reshape(w.shape[0], -1).contiguous()
            )
        path = folder / f"{name}.net.safetensors"
        metadata = {"layers": json.dumps(layers), "outputs": json.dumps(outputs), "scale": json.dumps([127.5, 128.0])}
        save_file(tensors, str(path), metadata=metadata)
        path.chmod(0o644)
        files[name] = path.name
    return files


def framing_rules() -> dict[str, Any]:
    """The face framing and detection rules the page applies (faces/framing.py: constants and default Framing)."""
    from deep_emotion.faces import framing as faces

    f = faces.DEFAULT_FRAMING
    return {
        "margin": f.margin,
        "context_retry": f.context_retry,
        "rotate_retry": f.rotate_retry,
        "align": f.align,
        "align_above": f.align_above,
        "min_probability": faces.MIN_PROBABILITY,
        "context_pad": faces.CONTEXT_PAD,
        "retry_thresholds": list(faces.RETRY_THRESHOLDS),
        "retry_min_probability": faces.RETRY_MIN_PROBABILITY,
        "retry_min_share": faces.RETRY_MIN_SHARE,
        "detect_max_side": faces.DETECT_MAX_SIDE,
        "whole_picture_max_side": faces.WHOLE_PICTURE_MAX_SIDE,
        "whole_picture_max_aspect": faces.WHOLE_PICTURE_MAX_ASPECT,
        "whole_picture_min_std": faces.WHOLE_PICTURE_MIN_STD,
    }


def colour_maps() -> dict[str, list[list[int]]]:
    """The project's two colour maps as 256-entry RGB tables (render.py: inferno unsigned, RdBu_r signed)."""
    import matplotlib
    import numpy as np

    ramp = np.linspace(0, 1, 256)
    return {
        name: (matplotlib.colormaps[name](ramp)[:, :3] * 255).astype(int).tolist() for name in ("inferno", "RdBu_r")
    }


def consensus_weights() -> dict[str, Any]:
    """The weights the pipeline combines models with (checkpoints/consensus.json, read as `Pipeline` reads it;
    equal weights when there is none): `ConsensusWeights.to_dict()`, kind, weights and the notes."""
    from deep_emotion.models.card import checkpoint_dir
    from deep_emotion.models.consensus import EQUAL, ConsensusWeights

    shipped = checkpoint_dir() / "consensus.json"
    return (ConsensusWeights.read(shipped) if shipped.is_file() else EQUAL).to_dict()


def export_all(folder: str | Path, names: list[str] | None = None) -> dict[str, Any]:
    """Every shipped model (or `names`) and MTCNN into `folder`, with `models.json` describing them: the models
    in the app's order, which are shown by default, the framing rules, the colour maps, the consensus weights
    and the canonical classes (their order)."""
    from deep_emotion.classes import CANONICAL
    from deep_emotion.models.card import default_models, model_order

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = names or list_checkpoints()
    cards = {n: read_card(resolve(n)) for n in names}  # the cards alone: weights are read once, below
    models = [export_model(n, folder / f"{n}.onnx") for n in model_order(cards)]
    index = {
        "models": models,
        "default_models": default_models(cards),
        "mtcnn": {**export_mtcnn(folder), "kernels": export_mtcnn_weights(folder)},
        "framing": framing_rules(),
        "colour_maps": colour_maps(),
        "input_size": 48,
        "consensus": consensus_weights(),
        "canonical": list(CANONICAL),
    }
    (folder / "models.json").write_text(json.dumps(index, indent=2) + "\n")
    return index
