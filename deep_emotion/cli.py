"""`deep-emotion` command line: train, evaluate, predict, explain, video, models.

Unusable input: one line on stderr, exit 2. Commands that analyse pictures go through one `Pipeline`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from deep_emotion.errors import DeepEmotionError
from deep_emotion.results import DEFAULT_METHODS  # torch-free: `--help` and `models` do not load torch

FRAMING_NAMES = ("default", "legacy", "level", "align", "unturned")


def framings() -> dict:
    """The framings `evaluate --as-photos --framing` offers (imported only when asked for)."""
    from deep_emotion.faces.framing import DEFAULT_FRAMING, LEGACY_FRAMING, Framing

    return {
        "default": DEFAULT_FRAMING,
        "legacy": LEGACY_FRAMING,
        "level": Framing(align=True, align_above=0.0),
        "align": Framing(align=True, align_above=0.0),  # the former name of "level"
        "unturned": Framing(align=False),
    }


def model_names(values: list[str] | str) -> list[str]:
    """--model values, each comma-separated or repeated: ['fer2013,ferplus', 'jaffe'] -> three names."""
    parts = [values] if isinstance(values, str) else values
    names: list[str] = []
    for part in parts:
        names += [n for n in dict.fromkeys(n.strip() for n in part.split(",")) if n and n not in names]
    if not names:
        raise DeepEmotionError("--model: name at least one model (see `deep-emotion models`)")
    return names


def cmd_train(args: argparse.Namespace) -> int:
    from deep_emotion.training.loop import train
    from deep_emotion.training.recipe import load_recipe

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    train(
        load_recipe(args.recipe),
        args.data_dir,
        epochs=args.epochs,
        device=args.device,
        resume=args.resume,
        run_dir=args.run_dir,
        out_dir=args.out,
        progress=args.progress,
        compile=args.compile,
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from deep_emotion.models.checkpoints import load_checkpoint
    from deep_emotion.training.data import card_data
    from deep_emotion.training.evaluation import evaluate

    if not args.as_photos and (args.limit is not None or args.framing != "default" or not args.whole_picture):
        raise DeepEmotionError("--limit, --framing and --no-whole-picture apply to --as-photos only")
    if args.as_photos and args.tta:
        raise DeepEmotionError("--tta does not apply to --as-photos; use --posthoc for the card's flip averaging")
    if args.limit is not None and args.limit < 1:
        raise DeepEmotionError(f"--limit must be at least 1, not {args.limit}")
    for name in model_names(args.model):  # one line (or JSON object) per model, each on its own data set
        model, card = load_checkpoint(name, posthoc=args.posthoc)
        if args.tta and model.posthoc is not None and model.posthoc.tta_flip:
            raise DeepEmotionError(
                f"{card.name}'s post-hoc corrections already average with the flipped face: drop --tta"
            )
        ds, split = card_data(card, args.data_dir, args.protocol)
        if tuple(ds.classes) != card.labels:
            raise DeepEmotionError(f"the data's classes {list(ds.classes)} differ from the model's {list(card.labels)}")
        idx = split[args.split]
        if args.as_photos:
            _evaluate_as_photos(args, name, model, card, ds, idx, split.protocol)
            continue
        result = evaluate(model, ds.images[idx], ds.labels[idx], card.classes, tta_flip=args.tta)
        result.update(
            model=card.name,
            dataset=card.dataset,
            split=args.split,
            protocol=split.protocol,
            tta_flip=args.tta,
            posthoc=None if model.posthoc is None else model.posthoc.to_dict(),
        )
        if args.json:
            print(json.dumps(result))
            continue
        print(
            f"{card.name} on {card.dataset} {args.split} ({split.protocol}{', post-hoc' if args.posthoc else ''}): "
            f"accuracy {result['accuracy']:.4f}, balanced accuracy {result['balanced_accuracy']:.4f}, "
            f"macro-F1 {result['macro_f1']:.4f}, ECE {result['ece']:.4f} over {result['n']} images"
        )
        for c, r in result["per_class"].items():
            print(f"  {c:>10}: recall {r}")
    return 0


def _evaluate_as_photos(args: argparse.Namespace, name: str, model, card, ds, idx, protocol: str) -> None:
    """`evaluate --as-photos`: the split's faces made into photos and read through the whole pipeline."""
    import numpy as np

    from deep_emotion.faces.detect import Detector
    from deep_emotion.faces.framing import Framing
    from deep_emotion.models.checkpoints import LoadedModel
    from deep_emotion.pipeline import Pipeline
    from deep_emotion.training.photo_protocol import expand_variants, run_protocol

    variants = expand_variants(args.as_photos)
    if args.limit:
        idx = np.sort(np.random.default_rng(args.seed).choice(idx, min(args.limit, len(idx)), replace=False))
    framing = Framing.from_card(card.face_crop) if args.framing == "card" else framings()[args.framing]
    pipe = Pipeline({card.name: LoadedModel(model, card)}, Detector(framing=framing, whole_picture=args.whole_picture))
    result = run_protocol(pipe, ds.images[idx], ds.labels[idx], variants, seed=args.seed, indices=idx)
    rows = {v: r[card.name] for v, r in result.items()}
    summary = {
        "model": card.name,
        "dataset": card.dataset,
        "split": args.split,
        "protocol": protocol,
        "n": int(len(idx)),
        "seed": args.seed,
        "framing": framing.card(),
        "posthoc": None if model.posthoc is None else model.posthoc.to_dict(),
        "whole_picture": args.whole_picture,
        "variants": rows,
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{card.name} on {card.dataset} {args.split} ({protocol}) as photos, {len(idx)} faces, seed {args.seed}:")
    for v, r in rows.items():
        found = "" if v == "crop" else f"  found {r['found']:.3f} (MTCNN {r['found_by_mtcnn']:.3f})"
        print(
            f"  {v:>13}: accuracy {r['accuracy']:.4f}  balanced {r['balanced_accuracy']:.4f}  "
            f"macro-F1 {r['macro_f1']:.4f}{found}"
        )


def expand_images(paths: list[Path]) -> list[Path]:
    """Files as given; folders become their image files (recursively, sorted)."""
    from deep_emotion.training.data.base import IMAGE_SUFFIXES

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


HOW_WHOLE = " (no face found; the whole picture read as a face crop)"


def cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from deep_emotion.faces.images import load_image
    from deep_emotion.pipeline import Pipeline

    pipe = Pipeline.from_names(model_names(args.model), posthoc=args.posthoc)
    files = expand_images(args.images)
    if not files:
        raise DeepEmotionError("no image files found in " + ", ".join(map(str, args.images)))
    classes = pipe.classes
    status, results = 0, []
    writer = None
    if args.csv:
        csv_file = open(args.csv, "w", newline="")
        writer = csv.writer(csv_file)
        writer.writerow(
            ["image", "face", "x0", "y0", "x1", "y1", "face_probability", "detected", "model", "top"]
            + [f"p_{c}" for c in classes]
        )
    try:
        for start in range(0, len(files), args.batch):  # detection and classification batched per chunk
            chunk, images = [], []
            for path in files[start : start + args.batch]:
                try:
                    images.append(load_image(path))
                    chunk.append(path)
                except DeepEmotionError as e:
                    print(f"error: {e}", file=sys.stderr)
                    status = 2
            for path, preds in zip(chunk, pipe.predict_many(pipe.find_faces_batch(images, args.detect))):
                results.append({"image": str(path), "faces": [p.to_dict() for p in preds]})
                if writer:
                    if not preds:
                        writer.writerow([str(path), 0, "", "", "", "", "", "", "", ""] + [""] * len(classes))
                    for p in preds:  # detected 0: the whole picture read as a face crop
                        rows = dict(p.probabilities, **({"consensus": p.consensus} if p.consensus else {}))
                        for m, probs in rows.items():
                            writer.writerow(
                                [
                                    str(path),
                                    p.index + 1,
                                    *(f"{v:.1f}" for v in p.box),
                                    f"{p.face_probability:.4f}",
                                    int(p.detected),
                                    m,
                                    max(probs, key=probs.get),
                                    *(f"{probs[c]:.4f}" if c in probs else "" for c in classes),
                                ]
                            )
                elif not args.json:
                    if not preds:
                        print(f"{path}: no face found (use --no-detect to classify the whole image as a face)")
                    for p in preds:
                        box = ", ".join(f"{v:.0f}" for v in p.box)
                        said = "; ".join(f"{m} {t} ({p.probabilities[m][t]:.2f})" for m, t in p.tops.items())
                        if p.consensus:
                            said += f"; consensus {p.consensus_top} ({p.consensus[p.consensus_top]:.2f})"
                        print(f"{path}: face {p.index + 1} [{box}]: {said}{'' if p.detected else HOW_WHOLE}")
    finally:
        if writer:
            csv_file.close()
    if args.json:
        print(json.dumps(results))
    elif writer:
        print(f"{len(results)} image(s), {sum(len(r['faces']) for r in results)} face(s) -> {args.csv}")
    return status


def cmd_video(args: argparse.Namespace) -> int:
    from collections import Counter

    from tqdm import tqdm

    from deep_emotion.pipeline import Pipeline
    from deep_emotion.video.clips import check_fps

    check_fps(args.fps)
    pipe = Pipeline.from_names(model_names(args.model), posthoc=args.posthoc)
    info = pipe.probe_clip(args.clip)  # over the caps or not a video: refused here, before anything is decoded
    total = round(info.seconds * args.fps) if info.seconds else None
    with tqdm(total=total, unit="frame", desc=args.clip.name, disable=not args.progress or args.json) as bar:
        result = pipe.analyze_clip(
            args.clip,
            fps=args.fps,
            detect_every=args.detect_every,
            smooth=args.smooth,
            progress=lambda t, n: bar.update(n - bar.n),
        )
    if args.csv:
        result.write_csv(args.csv)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    length = f"{info.seconds:.1f} s" if info.seconds else "unknown length"
    print(
        f"{args.clip}: {info.width}x{info.height}, {length}; {result.frames} frame(s) sampled at {args.fps:g} fps, "
        f"{len(result.faces())} face(s) followed"
    )
    for face in result.faces():
        rows = [r for r in result.rows if r.face == face]
        tops = "; ".join(
            f"{m}: mostly {Counter(result.classes[m][int(r.probabilities[m].argmax())] for r in rows).most_common(1)[0][0]}"  # noqa: E501
            for m in result.classes
        )
        print(f"  face {face}: {rows[0].time:.1f}-{rows[-1].time:.1f} s in {len(rows)} frame(s); {tops}")
    if args.csv:
        print(f"{len(result.records())} row(s) -> {args.csv}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from deep_emotion.models.card import checkpoint_dir, read_cards

    cards = read_cards()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": name,
                        "dataset": c.dataset,
                        "architecture": c.description,
                        "classes": list(c.classes),
                        "labels": list(c.labels),
                        "test_accuracy": None if c.test is None else c.test.accuracy,
                        "protocol": c.protocol,
                    }
                    for name, c in cards.items()
                ]
            )
        )
        return 0
    if args.markdown:
        print("| model | network | data set | classes | protocol | val | test | test balanced acc. | n test |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, c in cards.items():
            val, test = c.metrics["val"], c.metrics["test"]
            bal = "—" if test.balanced_accuracy is None else f"{test.balanced_accuracy:.4f}"
            print(
                f"| `{name}` | {c.description} | {c.dataset} | {len(c.labels)} | {c.protocol_note or c.protocol} "
                f"| {val.accuracy:.4f} | **{test.accuracy:.4f}** | {bal} | {test.n} |"
            )
        return 0
    if not cards:
        print(f"no bundled checkpoints in {checkpoint_dir()}")
    for name, c in cards.items():
        acc = "n/a" if c.test is None else f"{c.test.accuracy:.4f}"
        print(
            f"{name:<13} {c.dataset:<8} {c.description:<15} test accuracy {acc} ({c.protocol})  "
            f"classes: {', '.join(c.classes)}"
        )
    print(
        "ferg          not bundled: FERG-DB needs a licence form; with the data, run "
        "`deep-emotion train train/ferg.toml --data-dir DIR`"
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from deep_emotion import describe
    from deep_emotion.classes import canonical_or_label
    from deep_emotion.explain import render
    from deep_emotion.faces.images import load_image
    from deep_emotion.pipeline import Pipeline
    from deep_emotion.results import AnalysisOptions

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    target = None if args.target is None else canonical_or_label(args.target)
    options = AnalysisOptions(methods, args.window, args.stride, target, args.faithfulness, args.detect)
    options.check()
    pipe = Pipeline.from_names(model_names(args.model), posthoc=args.posthoc)
    if target is not None and target not in pipe.classes:
        raise DeepEmotionError(f"--target {args.target!r}: the models' classes are {', '.join(pipe.classes)}")
    image = load_image(args.image)
    faces = pipe.find_faces(image, detect=args.detect)
    if not faces:
        print(
            f"error: {args.image}: no face found (use --no-detect to explain the whole image as a face)",
            file=sys.stderr,
        )
        return 2
    if not 1 <= args.face <= len(faces):
        raise DeepEmotionError(f"--face {args.face}: the image has {len(faces)} face(s)")
    result = pipe.analyze(image, options=options, faces=faces, face_indices=[args.face - 1])
    face = result.faces[0]
    views = list(face.views.values())
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # fixed file names only (model names as loaded, the registry's method names): nothing is written outside --out
    picture = pipe.face_picture(image, faces[args.face - 1], side=MAP_SIDE)
    render.grey_image(face.crop, MAP_SIDE // face.crop.shape[-1]).save(out / "face.png")
    for view in views:
        stem = _safe(view.model)
        if view.stn_view is not None:
            render.titled(
                render.grey_image(view.stn_view, MAP_SIDE // view.stn_view.shape[-1]), f"{view.model}: the STN's view"
            ).save(out / f"{stem}-stn_view.png")
        for method, m in view.maps.items():
            render.map_tile(
                picture, m, f"{view.model} · {describe.method_title(method)} · {view.target}", scale=1, text_size=16
            ).save(out / f"{stem}-{method}.png")
    render.panel(face, views, list(options.methods)).save(out / "panel.png")
    summary = result.to_dict()
    (out / "explanation.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary))
        return 0
    how = "" if faces[args.face - 1].detected else HOW_WHOLE
    tops = "; ".join(f"{v.model} {v.top} ({v.probabilities[v.top]:.2f})" for v in views)
    print(f"{args.image}: face {args.face} of {len(faces)}{how}: {tops}; maps in {out}")
    for line in describe.view_lines(views, pipe.consensus({v.model: v.probabilities for v in views})):
        print("  " + line)
    return 0


MAP_SIDE = 384  # pixels of the face's square in `explain`'s PNGs


def _safe(name: str) -> str:
    """A model name as a file-name part (a path given as --model becomes its stem)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem)


def cmd_crossval(args: argparse.Namespace) -> int:
    from deep_emotion.training.crossval import cross_validate
    from deep_emotion.training.recipe import load_recipe

    summary = cross_validate(
        load_recipe(args.recipe),
        args.data_dir,
        n_folds=args.folds,
        epochs=args.epochs,
        run_dir=args.run_dir,
        device=args.device,
    )
    print(
        json.dumps(summary)
        if args.json
        else f"{summary['name']}: {summary['protocol']}: {summary['mean_accuracy']:.4f} ± {summary['std_accuracy']:.4f}"
    )
    return 0


def cmd_cross_eval(args: argparse.Namespace) -> int:
    from deep_emotion.training.cross_dataset import cross_dataset_table, to_markdown

    table = cross_dataset_table(args.data_dir, model_names(args.models) if args.models else None)
    print(json.dumps(table) if args.json else to_markdown(table))
    return 0


MODELS_HELP = "bundled names (see `models`) or .safetensors paths, comma-separated or repeated"


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
