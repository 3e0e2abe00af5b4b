"""Commands that read pictures through one `Pipeline`: predict, explain, video."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deep_emotion.cli.args import model_names
from deep_emotion.errors import DeepEmotionError


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
