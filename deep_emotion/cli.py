"""`deep-emotion` command line: train, evaluate, predict, explain, video, models. Unusable input: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deep_emotion.results import DEFAULT_METHODS
from deep_emotion.errors import DeepEmotionError
from deep_emotion.explain.registry import list_explainers
from deep_emotion.faces.framing import DEFAULT_FRAMING, LEGACY_FRAMING, Framing

FRAMINGS = {"default": DEFAULT_FRAMING, "legacy": LEGACY_FRAMING, "level": Framing(align=True, align_above=0.0),
            "align": Framing(align=True, align_above=0.0),  # the former name of "level"
            "unturned": Framing(align=False)}


def cmd_train(args: argparse.Namespace) -> int:
    from deep_emotion.training.recipe import load_recipe
    from deep_emotion.training.loop import train

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    train(load_recipe(args.recipe), args.data_dir, epochs=args.epochs, device=args.device, resume=args.resume,
          run_dir=args.run_dir, out_dir=args.out, progress=args.progress, compile=args.compile)
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
    model, card = load_checkpoint(args.model, posthoc=args.posthoc)
    if args.tta and model.posthoc is not None and model.posthoc.tta_flip:
        raise DeepEmotionError(f"{card['name']}'s post-hoc corrections already average with the flipped face: "
                               "drop --tta")
    ds, split = card_data(card, args.data_dir, args.protocol)
    if list(ds.classes) != card["classes"]:
        raise DeepEmotionError(f"the data's classes {list(ds.classes)} differ from the model's {card['classes']}")
    protocol = split.protocol
    idx = split[args.split]
    if args.as_photos:
        return _evaluate_as_photos(args, model, card, ds, idx, protocol)
    result = evaluate(model, ds.images[idx], ds.labels[idx], ds.classes, tta_flip=args.tta)
    result.update(model=card["name"], dataset=card["dataset"], split=args.split, protocol=protocol, tta_flip=args.tta,
                  posthoc=None if model.posthoc is None else model.posthoc.to_dict())
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{card['name']} on {card['dataset']} {args.split} ({protocol}{', post-hoc' if args.posthoc else ''}): "
              f"accuracy {result['accuracy']:.4f}, balanced accuracy {result['balanced_accuracy']:.4f}, "
              f"macro-F1 {result['macro_f1']:.4f}, ECE {result['ece']:.4f} over {result['n']} images")
        for c, r in result["per_class"].items():
            print(f"  {c:>10}: recall {r}")
    return 0


def _evaluate_as_photos(args: argparse.Namespace, model, card: dict, ds, idx, protocol: str) -> int:
    """`evaluate --as-photos`: the split's faces made into photos and read through the whole pipeline."""
    import numpy as np

    from deep_emotion.training.photo_protocol import expand_variants, run_protocol

    variants = expand_variants(args.as_photos)
    if args.limit:
        idx = np.sort(np.random.default_rng(args.seed).choice(idx, min(args.limit, len(idx)), replace=False))
    framing = Framing.from_card(card.get("face_crop")) if args.framing == "card" else FRAMINGS[args.framing]
    result = run_protocol({card["name"]: (model, card)}, ds.images[idx], ds.labels[idx], variants, framing,
                          seed=args.seed, indices=idx, whole_picture=args.whole_picture)
    rows = {v: r[card["name"]] for v, r in result.items()}
    summary = {"model": card["name"], "dataset": card["dataset"], "split": args.split, "protocol": protocol,
               "n": int(len(idx)), "seed": args.seed, "framing": framing.card(),
               "posthoc": None if model.posthoc is None else model.posthoc.to_dict(),
               "whole_picture": args.whole_picture, "variants": rows}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{card['name']} on {card['dataset']} {args.split} ({protocol}) as photos, {len(idx)} faces, seed {args.seed}:")
    for v, r in rows.items():
        found = "" if v == "crop" else f"  found {r['found']:.3f} (MTCNN {r['found_by_mtcnn']:.3f})"
        print(f"  {v:>13}: accuracy {r['accuracy']:.4f}  balanced {r['balanced_accuracy']:.4f}  "
              f"macro-F1 {r['macro_f1']:.4f}{found}")
    return 0


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


def cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from deep_emotion.results import classify
    from deep_emotion.models.checkpoints import load_checkpoint
    from deep_emotion.faces.detect import detect_faces_batch, or_whole_picture, whole_image_face
    from deep_emotion.faces.images import load_image

    model, card = load_checkpoint(args.model, posthoc=args.posthoc)
    classes = card["classes"]
    files = expand_images(args.images)
    if not files:
        raise DeepEmotionError("no image files found in " + ", ".join(map(str, args.images)))
    status, results = 0, []
    writer = None
    if args.csv:
        csv_file = open(args.csv, "w", newline="")
        writer = csv.writer(csv_file)
        writer.writerow(["image", "face", "x0", "y0", "x1", "y1", "face_probability", "top"] + [f"p_{c}" for c in classes]
                        + ["detected"])
    try:
        for start in range(0, len(files), args.batch):  # detection and classification batched per chunk
            chunk, images = [], []
            for path in files[start:start + args.batch]:
                try:
                    images.append(load_image(path))
                    chunk.append(path)
                except DeepEmotionError as e:
                    print(f"error: {e}", file=sys.stderr)
                    status = 2
            faces = ([or_whole_picture(im, fs) for im, fs in zip(images, detect_faces_batch(images))] if args.detect
                     else [[whole_image_face(im)] for im in images])
            flat = [f for fs in faces for f in fs]
            preds = iter(classify(model, classes, flat))
            for path, fs in zip(chunk, faces):
                mine = [next(preds) for _ in fs]
                results.append({"image": str(path), "model": card["name"], "faces": [p.to_dict() for p in mine]})
                if writer:
                    if not mine:
                        writer.writerow([str(path), 0, "", "", "", "", "", ""] + [""] * len(classes) + [""])
                    for i, p in enumerate(mine, 1):  # detected 0: the whole picture read as a face crop
                        writer.writerow([str(path), i, *(f"{v:.1f}" for v in p.box), f"{p.face_probability:.4f}", p.top,
                                         *(f"{p.probabilities[c]:.4f}" for c in classes), int(p.detected)])
                elif not args.json:
                    if not mine:
                        print(f"{path}: no face found (use --no-detect to classify the whole image as a face)")
                    for i, (p, f) in enumerate(zip(mine, fs), 1):
                        box = ", ".join(f"{v:.0f}" for v in p.box)
                        how = "" if f.detected else " (no face found; the whole picture read as a face crop)"
                        print(f"{path}: face {i} [{box}]: {p.top} ({p.probabilities[p.top]:.2f}){how}")
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

    from deep_emotion.models.checkpoints import load_checkpoint
    from deep_emotion.video.analysis import analyze_video
    from deep_emotion.video.clips import check_fps, probe

    check_fps(args.fps)
    names = [n for part in args.model for n in part.split(",") if n] or ["fer2013"]
    info = probe(args.clip)  # over the caps or not a video: refused here, before anything is decoded
    models = {n: load_checkpoint(n, posthoc=args.posthoc) for n in names}
    total = round(info.seconds * args.fps) if info.seconds else None
    with tqdm(total=total, unit="frame", desc=args.clip.name, disable=not args.progress or args.json) as bar:
        result = analyze_video(args.clip, models, fps=args.fps, detect_every=args.detect_every, smooth=args.smooth,
                               progress=lambda t, n: bar.update(n - bar.n))
    if args.csv:
        result.write_csv(args.csv)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    length = f"{info.seconds:.1f} s" if info.seconds else "unknown length"
    print(f"{args.clip}: {info.width}x{info.height}, {length}; {result.frames} frame(s) sampled at {args.fps:g} fps, "
          f"{len(result.faces())} face(s) followed")
    for face in result.faces():
        rows = [r for r in result.rows if r.face == face]
        tops = "; ".join(f"{m}: mostly {Counter(result.classes[m][int(r.probabilities[m].argmax())] for r in rows).most_common(1)[0][0]}"
                         for m in models)
        print(f"  face {face}: {rows[0].time:.1f}-{rows[-1].time:.1f} s in {len(rows)} frame(s); {tops}")
    if args.csv:
        print(f"{len(result.records())} row(s) -> {args.csv}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from deep_emotion.models.card import architecture, checkpoint_dir, list_checkpoints, read_card, resolve

    cards = {name: read_card(resolve(name)) for name in list_checkpoints()}
    rows = []
    for name, card in cards.items():
        test = card.get("metrics", {}).get("test", {})
        rows.append({"name": name, "dataset": card.get("dataset"), "architecture": architecture(card),
                     "classes": card["classes"], "test_accuracy": test.get("accuracy"), "protocol": card.get("protocol")})
    if args.json:
        print(json.dumps(rows))
        return 0
    if args.markdown:
        print("| model | network | data set | classes | protocol | val | test | test balanced acc. | n test |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, card in cards.items():
            m = card["metrics"]
            bal = m["test"].get("balanced_accuracy")
            print(f"| `{name}` | {architecture(card)} | {card['dataset']} | {len(card['classes'])} | {card.get('protocol_note', card['protocol'])} "
                  f"| {m['val']['accuracy']:.4f} | **{m['test']['accuracy']:.4f}** | {'—' if bal is None else f'{bal:.4f}'} "
                  f"| {m['test']['n']} |")
        return 0
    if not rows:
        print(f"no bundled checkpoints in {checkpoint_dir()}")
    for r in rows:
        acc = "n/a" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
        print(f"{r['name']:<13} {r['dataset']:<8} {r['architecture']:<15} test accuracy {acc} ({r['protocol']})  "
              f"classes: {', '.join(r['classes'])}")
    print("ferg          not bundled: FERG-DB needs a licence form; with the data, run "
          "`deep-emotion train train/ferg.toml --data-dir DIR`")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from deep_emotion import explain as explainers
    from deep_emotion.explain import render
    from deep_emotion.results import AnalysisOptions, analyze, find_faces
    from deep_emotion.models.checkpoints import load_checkpoint
    from deep_emotion.faces.images import load_image

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    options = AnalysisOptions(methods, args.window, args.stride, args.target, args.faithfulness, args.detect)
    options.check()
    loaded = load_checkpoint(args.model, posthoc=args.posthoc)
    name = loaded[1]["name"]
    if args.target is not None and args.target not in loaded[1]["classes"]:
        raise DeepEmotionError(f"--target {args.target!r}: {name}'s classes are {', '.join(loaded[1]['classes'])}")
    image = load_image(args.image)
    faces = find_faces(image, detect=args.detect)
    if not faces:
        print(f"error: {args.image}: no face found (use --no-detect to explain the whole image as a face)",
              file=sys.stderr)
        return 2
    if not 1 <= args.face <= len(faces):
        raise DeepEmotionError(f"--face {args.face}: the image has {len(faces)} face(s)")
    result = analyze(image, {name: loaded}, options, faces=faces, face_indices=[args.face - 1])
    face = result.faces[0]
    view = face.views[name]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # fixed file names only (the registry's method names): nothing is written outside --out
    render.grey_image(face.crop).save(out / "face.png")
    if view.stn_view is not None:
        render.grey_image(view.stn_view).save(out / "stn_view.png")
    for method, m in view.maps.items():
        render.map_tile(face.crop, m, explainers.EXPLAINERS[method].title).save(out / f"{method}.png")
    render.panel(face, [view], list(view.maps)).save(out / "panel.png")
    summary = result.to_dict()
    (out / "explanation.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary))
        return 0
    how = "" if faces[args.face - 1].detected else " (no face found; the whole picture read as a face crop)"
    print(f"{args.image}: face {args.face} of {len(faces)}{how}: {view.top} ({view.probabilities[view.top]:.2f}); "
          f"maps of {view.target} in {out}")
    if "regions" in view.maps:
        print("  " + explainers.region_sentence(view.maps["regions"], view.target))
    best = view.most_faithful()
    if best:
        f = view.faithfulness
        print(f"  most faithful map for this face: {best} (insertion - deletion AUC {f[best]['difference']:+.3f}; "
              f"random map {f['random']['difference']:+.3f})")
    for method, why in view.skipped.items():
        print(f"  {method}: skipped, {why}")
    return 0


def cmd_crossval(args: argparse.Namespace) -> int:
    from deep_emotion.training.crossval import cross_validate
    from deep_emotion.training.recipe import load_recipe

    summary = cross_validate(load_recipe(args.recipe), args.data_dir, n_folds=args.folds, epochs=args.epochs,
                             run_dir=args.run_dir, device=args.device)
    print(json.dumps(summary) if args.json else
          f"{summary['name']}: {summary['protocol']}: {summary['mean_accuracy']:.4f} ± {summary['std_accuracy']:.4f}")
    return 0


def cmd_cross_eval(args: argparse.Namespace) -> int:
    from deep_emotion.training.cross_dataset import cross_dataset_table, to_markdown

    table = cross_dataset_table(args.data_dir, args.models.split(",") if args.models else None)
    print(json.dumps(table) if args.json else to_markdown(table))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deep-emotion",
                                description="Deep-Emotion: facial expressions, and where the network looks.")
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
    e.add_argument("--model", required=True, help="bundled name (see `models`) or path to a .safetensors")
    e.add_argument("--data-dir", type=Path, required=True)
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--protocol", help="default: the protocol on the model card")
    e.add_argument("--tta", action="store_true", help="average with the horizontally flipped face")
    e.add_argument("--posthoc", action="store_true",
                   help="with the card's post-hoc corrections (flip averaging, logit adjustment, temperature), "
                        "as the app and `predict` use the model")
    e.add_argument("--as-photos", metavar="VARIANTS",
                   help="make each face a photo and read it through the whole pipeline: all, or groups tight, "
                        "context, rotated, light, or variants (tight-x4, rotate+20, jpeg-30, ...), comma-separated")
    e.add_argument("--limit", type=int, help="with --as-photos: this many faces of the split, drawn with --seed")
    e.add_argument("--seed", type=int, default=0, help="with --as-photos: seeds the photos and the draw")
    e.add_argument("--framing", default="default", choices=[*FRAMINGS, "card"],
                   help="with --as-photos: the face framing (default: the app's; card: the one the card records)")
    e.add_argument("--whole-picture", action=argparse.BooleanOptionalAction, default=True,
                   help="with --as-photos: read a small square picture with no face found as one face (as the app)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="find every face in each image (or folder of images) and classify it")
    pr.add_argument("images", nargs="+", type=Path, help="image files and/or folders")
    pr.add_argument("--csv", type=Path, help="write one row per face (and per image without a face) here")
    pr.add_argument("--batch", type=int, default=32, help="images detected and classified together")
    pr.add_argument("--model", default="fer2013")
    pr.add_argument("--detect", action=argparse.BooleanOptionalAction, default=True,
                    help="--no-detect classifies the whole image as a face crop")
    pr.add_argument("--posthoc", action=argparse.BooleanOptionalAction, default=True,
                    help="the card's post-hoc corrections (calibrated probabilities); --no-posthoc: the network alone")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("explain", help="the face's maps (occlusion, Captum's attributions, facial regions, the STN's "
                                         "view) as PNGs with colour bars, and explanation.json with their faithfulness")
    ex.add_argument("image", type=Path)
    ex.add_argument("--model", default="fer2013")
    ex.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help="comma-separated explanation methods, from: " + ", ".join(list_explainers()))
    ex.add_argument("--target", default=None, help="the class to explain (default: the predicted one)")
    ex.add_argument("--window", type=int, default=8, help="occluding square, pixels of the 48x48 face (1..48)")
    ex.add_argument("--stride", type=int, default=2, help="step of the sliding square (>= 1)")
    ex.add_argument("--faithfulness", action=argparse.BooleanOptionalAction, default=True,
                    help="deletion/insertion AUC of every map, and of a random map")
    ex.add_argument("--face", type=int, default=1, help="which face, 1 = the largest")
    ex.add_argument("--detect", action=argparse.BooleanOptionalAction, default=True)
    ex.add_argument("--out", type=Path, required=True, help="folder for the PNGs and explanation.json")
    ex.add_argument("--posthoc", action=argparse.BooleanOptionalAction, default=True,
                    help="explain the model with the card's post-hoc corrections (as the app shows it)")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_explain)

    v = sub.add_parser("video", help="faces of a video clip over time: one CSV row per (time, face, model)")
    v.add_argument("clip", type=Path, help="mp4, webm, mov, avi, mkv or gif")
    v.add_argument("--model", action="append", default=[],
                   help="bundled name; repeat or comma-separate for several (default: fer2013)")
    v.add_argument("--fps", type=float, default=4.0, help="frames sampled per second of video (<= 30)")
    v.add_argument("--detect-every", type=int, default=1,
                   help="find faces in every k-th sampled frame only; in between each face keeps its box (faster)")
    v.add_argument("--smooth", type=float, default=0.0,
                   help="half-life in seconds of a moving average of each face's probabilities (0: none)")
    v.add_argument("--csv", type=Path, help="write the rows here")
    v.add_argument("--posthoc", action=argparse.BooleanOptionalAction, default=True,
                   help="the card's post-hoc corrections (calibrated probabilities)")
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
    try:
        return args.func(args)
    except (DeepEmotionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
