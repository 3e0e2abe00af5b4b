"""Commands that need data sets or only cards: train, evaluate, models, crossval, cross-eval."""

from __future__ import annotations

import argparse
import json

from deep_emotion.cli.args import framings, model_names
from deep_emotion.errors import DeepEmotionError


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
