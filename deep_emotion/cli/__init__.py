"""`deep-emotion` command line: train, evaluate, predict, explain, video, models.

Unusable input: one line on stderr, exit 2. Commands that analyse pictures go through one `Pipeline`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deep_emotion.cli.args import FRAMING_NAMES, MODELS_HELP
from deep_emotion.cli.data import cmd_cross_eval, cmd_crossval, cmd_evaluate, cmd_models, cmd_train
from deep_emotion.cli.photos import cmd_explain, cmd_predict, cmd_video
from deep_emotion.errors import DeepEmotionError
from deep_emotion.results import DEFAULT_METHODS  # torch-free: `--help` and `models` do not load torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deep-emotion", description="Deep-Emotion: facial expressions, and where the network looks."
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a recipe (train/*.toml), write checkpoints/<name>.safetensors + card")
    t.add_argument("recipe", type=Path)
    t.add_argument("--data-dir", type=Path, required=True, help="the data set's folder, or a folder holding it by name")
    t.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir where it stopped")
    t.add_argument("--run-dir", type=Path, help="log and resumable state (default runs/<name>)")
    t.add_argument("--out", type=Path, help="where the checkpoint and card go (default checkpoints/)")
    t.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm bars")
    t.add_argument("--compile", action="store_true", help="torch.compile the model (worth it on GPUs)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy, per-class recall and confusion of a model on a split")
    e.add_argument("--model", required=True, action="append", help=MODELS_HELP)
    e.add_argument("--data-dir", type=Path, required=True)
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--protocol", help="default: the protocol on the model card")
    e.add_argument("--tta", action="store_true", help="average with the horizontally flipped face")
    e.add_argument(
        "--posthoc",
        action="store_true",
        help="with the card's post-hoc corrections (flip averaging, logit adjustment, temperature), "
        "as the app and `predict` use the model",
    )
    e.add_argument(
        "--as-photos",
        metavar="VARIANTS",
        help="make each face a photo and read it through the whole pipeline: all, or groups tight, "
        "context, rotated, light, or variants (tight-x4, rotate+20, jpeg-30, ...), comma-separated",
    )
    e.add_argument("--limit", type=int, help="with --as-photos: this many faces of the split, drawn with --seed")
    e.add_argument("--seed", type=int, default=0, help="with --as-photos: seeds the photos and the draw")
    e.add_argument(
        "--framing",
        default="default",
        choices=[*FRAMING_NAMES, "card"],
        help="with --as-photos: the face framing (default: the app's; card: the one the card records)",
    )
    e.add_argument(
        "--whole-picture",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --as-photos: read a small square picture with no face found as one face (as the app)",
    )
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="find every face in each image (or folder of images) and classify it")
    pr.add_argument("images", nargs="+", type=Path, help="image files and/or folders")
    pr.add_argument("--csv", type=Path, help="write one row per face (and per image without a face) here")
    pr.add_argument("--batch", type=int, default=32, help="images detected and classified together")
    pr.add_argument("--model", action="append", help=MODELS_HELP + " (default: fer2013)")
    pr.add_argument(
        "--detect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--no-detect classifies the whole image as a face crop",
    )
    pr.add_argument(
        "--posthoc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the card's post-hoc corrections (calibrated probabilities); --no-posthoc: the network alone",
    )
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser(
        "explain",
        help="the face's maps (occlusion, Captum's attributions, facial regions, the STN's "
        "view) as PNGs with colour bars, and explanation.json with their faithfulness",
    )
    ex.add_argument("image", type=Path)
    ex.add_argument("--model", action="append", help=MODELS_HELP + " (default: fer2013)")
    ex.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated explanation methods (default: %(default)s; also occlusion-drop, and any "
        "registered plugin)",
    )
    ex.add_argument("--target", default=None, help="the class to explain (default: the predicted one)")
    ex.add_argument("--window", type=int, default=8, help="occluding square, pixels of the 48x48 face (1..48)")
    ex.add_argument("--stride", type=int, default=2, help="step of the sliding square (>= 1)")
    ex.add_argument(
        "--faithfulness",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="deletion/insertion AUC of every map, and of a random map",
    )
    ex.add_argument("--face", type=int, default=1, help="which face, 1 = the largest")
    ex.add_argument("--detect", action=argparse.BooleanOptionalAction, default=True)
    ex.add_argument("--out", type=Path, required=True, help="folder for the PNGs and explanation.json")
    ex.add_argument(
        "--posthoc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="explain the model with the card's post-hoc corrections (as the app shows it)",
    )
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_explain)

    v = sub.add_parser("video", help="faces of a video clip over time: one CSV row per (time, face, model)")
    v.add_argument("clip", type=Path, help="mp4, webm, mov, avi, mkv or gif")
    v.add_argument("--model", action="append", help=MODELS_HELP + " (default: fer2013)")
    v.add_argument("--fps", type=float, default=4.0, help="frames sampled per second of video (<= 30)")
    v.add_argument(
        "--detect-every",
        type=int,
        default=1,
        help="find faces in every k-th sampled frame only; in between each face keeps its box (faster)",
    )
    v.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        help="half-life in seconds of a moving average of each face's probabilities (0: none)",
    )
    v.add_argument("--csv", type=Path, help="write the rows here")
    v.add_argument(
        "--posthoc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the card's post-hoc corrections (calibrated probabilities)",
    )
    v.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="a tqdm bar on stderr")
    v.add_argument("--json", action="store_true", help="every row as JSON on stdout")
    v.set_defaults(func=cmd_video)

    cv = sub.add_parser("crossval", help="subject-independent k-fold cross-validation of a recipe")
    cv.add_argument("recipe", type=Path)
    cv.add_argument("--data-dir", type=Path, required=True)
    cv.add_argument("--folds", type=int, default=10)
    cv.add_argument("--epochs", type=int)
    cv.add_argument("--run-dir", type=Path, help="default runs/<name>-folds (resumable per fold)")
    cv.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    cv.add_argument("--json", action="store_true")
    cv.set_defaults(func=cmd_crossval)

    x = sub.add_parser("cross-eval", help="every shipped model on every shipped data set's test split (shared classes)")
    x.add_argument("--data-dir", type=Path, required=True)
    x.add_argument("--models", help="comma-separated names (default: all bundled)")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_cross_eval)

    m = sub.add_parser("models", help="the bundled checkpoints")
    m.add_argument("--json", action="store_true")
    m.add_argument("--markdown", action="store_true", help="the README's results table")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in ("train", "crossval"):
        # before torch loads: idle OpenMP threads sleep rather than spin, as in the apps (on a busy machine a
        # spinning thread takes the core another thread waits for)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if getattr(args, "model", "") is None:
        args.model = ["fer2013"]
    try:
        return args.func(args)
    except (DeepEmotionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
