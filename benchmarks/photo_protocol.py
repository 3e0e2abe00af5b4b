r"""The photo protocol for every shipped model: each data set's test faces made into photos (tight, context,
rotated, light; deep_emotion/training/photo_protocol.py) and read through one `Pipeline`, with each face framing,
for the network alone ("raw") and with its card's post-hoc corrections ("posthoc").

One JSON line per (data set, framing, variant) goes to --out (appended; --resume skips lines already there),
then a summary; --markdown prints README's tables from --out.

    python benchmarks/photo_protocol.py --data-dir ../shared/data --split val --limit 300 \
        --models fer2013,fer2013-wide \
        --framings legacy,inside-edge,m0.1,align,m0,fit --out docs/photo_framings_val.jsonl     # choosing
    python benchmarks/photo_protocol.py --markdown docs/photo_framings_val.jsonl --compare-framings --columns raw
    python benchmarks/photo_protocol.py --data-dir ../shared/data --out docs/photo_protocol.jsonl      # reporting
    python benchmarks/photo_protocol.py --markdown docs/photo_protocol.jsonl                           # the tables
`make bench` runs a subset (--limit 200, four variants, the shipped framing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import environment  # noqa: E402

from deep_emotion.faces.framing import DEFAULT_FRAMING, LEGACY_FRAMING, Framing  # noqa: E402
from deep_emotion.models.card import ModelCard, list_checkpoints  # noqa: E402
from deep_emotion.models.checkpoints import load_checkpoint  # noqa: E402
from deep_emotion.pipeline import Pipeline, parse_names  # noqa: E402
from deep_emotion.training.data import card_data  # noqa: E402
from deep_emotion.training.photo_protocol import GROUPS, expand_variants, run_protocol  # noqa: E402

FRAMINGS = {
    "legacy": LEGACY_FRAMING,  # before the framing rules: black padding, no retries, margin 0.1
    # the rows of the framing rules' choice, all at the margin of that time (0.1), none turned
    "inside-edge": Framing(margin=0.1, pad="edge", rotate_retry=0.0, align=False),  # cut-off faces edge-padded
    "pad-edge": Framing(margin=0.1, pad="edge", align=False),
    "pad-black": Framing(margin=0.1, pad="black", align=False),
    "align": Framing(margin=0.1, align=True, align_above=0.0),
    "m0.1": Framing(margin=0.1, align=False),
    # the margin's choice (train/fit_framing.py): 0.0 and the fitted -0.02, unturned
    "m0": Framing(margin=0.0, align=False),
    "fit": Framing(margin=-0.02, align=False),
    # turning at the fitted margin: every face levelled, or only the tilt beyond 10 (ships) / 20 degrees
    **{f"fit-align{t}": Framing(margin=-0.02, align=True, align_above=t) for t in (0, 10, 20)},
    "default": DEFAULT_FRAMING,
}


POSTHOC = "+posthoc"  # the pipeline's name for a model with its card's post-hoc corrections


def data_sets(cards: dict[str, ModelCard]) -> dict[tuple, list[str]]:
    """Shipped models grouped by the test faces they are scored on: data set, protocol, seed and fold."""
    out: dict[tuple, list[str]] = {}
    for name, card in cards.items():
        key = (card.dataset, card.protocol, card.seed or 0, card.fold)
        out.setdefault(key, []).append(name)
    return out


def run(args: argparse.Namespace) -> None:
    done = set()
    if args.resume and args.out and args.out.exists():
        for line in args.out.read_text().splitlines():
            r = json.loads(line)
            if "variant" in r and r["split"] == args.split:
                done.add((r["dataset"], r["framing"], r["variant"]))
    variants = expand_variants(args.variants)
    names = parse_names(args.models) or list_checkpoints()
    env = environment()
    # one pipeline for every run: each network alone ("raw") and with its card's corrections; its detector's
    # framing is the one under test
    pipe = Pipeline(
        {**{n: load_checkpoint(n) for n in names}, **{n + POSTHOC: load_checkpoint(n, posthoc=True) for n in names}}
    )
    shipped = pipe.detector
    for (dataset, *_), members in data_sets({n: pipe.cards[n] for n in names}).items():
        card = pipe.cards[members[0]]
        ds, split = card_data(card, args.data_dir)
        idx = split[args.split]
        if args.limit and len(idx) > args.limit:
            idx = np.sort(np.random.default_rng(args.seed).choice(idx, args.limit, replace=False))
        for fname in args.framings.split(","):
            todo = [v for v in variants if (dataset, fname, v) not in done]
            if not todo:
                continue
            pipe.detector = replace(shipped, framing=FRAMINGS[fname])
            t0 = time.perf_counter()
            result = run_protocol(
                pipe,
                ds.images[idx],
                ds.labels[idx],
                todo,
                members + [n + POSTHOC for n in members],
                seed=args.seed,
                indices=idx,
            )
            seconds = time.perf_counter() - t0
            for variant, per_model in result.items():
                row = {
                    "dataset": dataset,
                    "split": args.split,
                    "protocol": split.protocol,
                    "n": int(len(idx)),
                    "seed": args.seed,
                    "framing": fname,
                    "variant": variant,
                    "models": per_model,
                    "seconds_for_all_variants": round(seconds, 1),
                    "env": env,
                }
                line = json.dumps(row)
                print(line, flush=True)
                if args.out and (variant != "crop" or (dataset, fname, "crop") not in done):
                    with args.out.open("a") as f:
                        f.write(line + "\n")
                done.add((dataset, fname, variant))


def markdown(path: Path, framing: str = "default", columns: str = "posthoc") -> str:
    """README's table: per model, crop accuracy and each variant group's mean (accuracy, balanced accuracy,
    macro-F1, faces found) for one framing."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by: dict[tuple[str, str], dict] = {}  # (model, variant) -> row: each model is scored on its own data set
    for r in rows:
        if r["framing"] == framing:
            for m in r["models"]:
                by[(m, r["variant"])] = r
    pick = sorted({m for m, _ in by if m.endswith(POSTHOC) == (columns == "posthoc")})
    lines = [
        "| model | n | crop acc / bal | " + " | ".join(f"{g} acc / bal / F1 (found)" for g in GROUPS) + " |",
        "|---" * (3 + len(GROUPS)) + "|",
    ]
    for m in pick:
        crop = by.get((m, "crop"))
        if crop is None:
            continue
        c = crop["models"][m]
        cells = [f"`{m.removesuffix(POSTHOC)}`", str(crop["n"]), f"{c['accuracy']:.3f} / {c['balanced_accuracy']:.3f}"]
        for _group, vs in GROUPS.items():
            got = [by[(m, v)]["models"][m] for v in vs if (m, v) in by]
            if not got:
                cells.append("—")
                continue
            mean = {
                k: float(np.mean([g[k] for g in got])) for k in ("accuracy", "balanced_accuracy", "macro_f1", "found")
            }
            cells.append(
                f"{mean['accuracy']:.3f} / {mean['balanced_accuracy']:.3f} / {mean['macro_f1']:.3f} "
                f"({mean['found']:.1%})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def framing_table(path: Path, columns: str = "raw") -> str:
    """The framings side by side (rows) for each model: crop accuracy, each group's mean accuracy, MTCNN's
    detection rate on tight-x4 and on context."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    framings = list(dict.fromkeys(r["framing"] for r in rows))
    models = sorted({m for r in rows for m in r["models"] if m.endswith(POSTHOC) == (columns == "posthoc")})
    if len({(r["dataset"], r["split"]) for r in rows}) > 1:
        raise SystemExit(f"{path}: rows of several data sets or splits; the framing table compares one")
    lines = [
        "| framing | model | crop | " + " | ".join(GROUPS) + " | MTCNN found: tight-x4 / context |",
        "|---" * (4 + len(GROUPS)) + "|",
    ]
    for f in framings:
        by = {r["variant"]: r for r in rows if r["framing"] == f}
        for m in models:
            if "crop" not in by or m not in by["crop"]["models"]:
                continue
            cells = [f, f"`{m.removesuffix(POSTHOC)}`", f"{by['crop']['models'][m]['accuracy']:.3f}"]
            for vs in GROUPS.values():
                got = [by[v]["models"][m]["accuracy"] for v in vs if v in by]
                cells.append(f"{np.mean(got):.3f}" if got else "—")
            found = [f"{by[v]['models'][m]['found_by_mtcnn']:.2f}" if v in by else "—" for v in ("tight-x4", "context")]
            cells.append(" / ".join(found))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--models", help="comma-separated (default: all shipped)")
    ap.add_argument("--variants", default="all")
    ap.add_argument("--framings", default="default", help=f"comma-separated of {', '.join(FRAMINGS)}")
    ap.add_argument(
        "--split",
        default="test",
        choices=["val", "test"],
        help="val to choose framings and options, test to report them (once)",
    )
    ap.add_argument("--limit", type=int, default=600, help="faces per split, drawn with --seed (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="append JSON lines here")
    ap.add_argument("--resume", action="store_true", help="skip (data set, framing, variant) already in --out")
    ap.add_argument("--markdown", type=Path, help="print the tables from this JSON-lines file and stop")
    ap.add_argument("--framing", default="default", help="with --markdown: which framing's table")
    ap.add_argument("--columns", default="posthoc", choices=["raw", "posthoc"], help="with --markdown")
    ap.add_argument("--compare-framings", action="store_true", help="with --markdown: the framings side by side")
    args = ap.parse_args()
    if args.markdown:
        print(
            framing_table(args.markdown, args.columns)
            if args.compare_framings
            else markdown(args.markdown, args.framing, args.columns)
        )
        return
    if not args.data_dir:
        ap.error("--data-dir is required (or --markdown FILE)")
    run(args)


if __name__ == "__main__":
    main()
