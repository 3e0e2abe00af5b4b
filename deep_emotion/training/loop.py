"""Training, read top to bottom in `train`: data, model and optimiser, one epoch at a time with validation,
then the card. Seeded, resumable, best-on-validation kept; data-parallel under torchrun (distributed.py)."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import MISSING, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from deep_emotion.faces.framing import FACE_CROP
from deep_emotion.models.card import PAPER, ModelCard, checkpoint_dir, read_card
from deep_emotion.models.checkpoints import save_checkpoint
from deep_emotion.models.inputs import to_tensor
from deep_emotion.models.registry import EmotionModel, architecture_name, classifier_name, create_model
from deep_emotion.training.augment import augment_batch
from deep_emotion.training.data import FaceDataset, Split, load_dataset, reader_options
from deep_emotion.training.distributed import Process, from_main, start, stop, sum_all, wrap
from deep_emotion.training.evaluation import evaluate, plot_confusion
from deep_emotion.training.recipe import Recipe

LICENCES = {
    "fer2013": "FER2013 (Goodfellow et al. 2013, ICML challenge): research use",
    "ferplus": "FERPlus labels: MIT (Microsoft); images from FER2013: research use",
    "ckplus": "CK+ (Lucey et al. 2010): non-commercial research use, by agreement",
    "jaffe": "JAFFE (Lyons et al. 1998): non-commercial research use, by agreement",
    "ferg": "FERG-DB (Aneja et al. 2016): research use, by licence form",
    "folder": "user-supplied images",
}
PROTOCOL_NOTES = {
    ("fer2013", "paper"): "official split: train on Training, select on PublicTest, report PrivateTest",
    ("ferplus", "official"): "official FERPlus Train / Valid / Test, majority-vote labels",
    ("ckplus", "random"): "random 70/10/20 split of frames (seeded); frames of one sequence leak across parts",
    (
        "jaffe",
        "paper",
    ): "paper protocol: 10 test images per emotion (70), 23 validation, 120 train; random over subjects",
}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Linear warm-up, then cosine decay to 0 (or constant)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def transfer_weights(model: EmotionModel, classes: tuple[str, ...], source: str) -> None:
    """Start from another checkpoint (same architecture): every layer but the classifier is copied; the
    classifier's rows are matched by canonical class name, and classes the source does not know keep their init.
    A model whose classifier is not `len(classes)` wide gets a new one first (`reset_classifier`)."""
    from deep_emotion.classes import canonical
    from deep_emotion.models.checkpoints import load_checkpoint

    if model.classifier.out_features != len(classes):
        model.reset_classifier(len(classes))
    src, card = load_checkpoint(source)
    src_arch, own_arch = card.architecture, architecture_name(model)
    if src_arch != own_arch:
        raise ValueError(f"init_from {source}: architecture differs ({src_arch}, not {own_arch})")
    head = classifier_name(src) + "."
    state = {k: v for k, v in src.state_dict().items() if not k.startswith(head)}
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"init_from {source}: architecture differs ({', '.join(mismatched[:3])})")
    model.load_state_dict(state, strict=False)
    src_rows = {canonical(c): i for i, c in enumerate(card.labels)}
    own_fc, src_fc = model.classifier, src.classifier
    with torch.no_grad():
        for i, c in enumerate(classes):
            j = src_rows.get(canonical(c))
            if j is not None:
                own_fc.weight[i].copy_(src_fc.weight[j])
                own_fc.bias[i].copy_(src_fc.bias[j])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class TrainingData:
    """The data set, its split, and the training faces as one tensor on the training device (every process
    holds all of them; each trains on its shard of every batch)."""

    ds: FaceDataset
    split: Split
    x: torch.Tensor  # (N, 1, 48, 48) float in [0, 1]
    y: torch.Tensor  # (N,) class indices
    class_weight: torch.Tensor | None  # inverse class frequency when the recipe balances classes


def load_training_data(
    recipe: Recipe, data_dir: str | Path, dev: torch.device, fold: int | None = None, n_folds: int = 10
) -> TrainingData:
    ds = load_dataset(recipe.dataset, data_dir, **reader_options(recipe.dataset, FACE_CROP))
    split = ds.split(recipe.protocol or None, recipe.seed, fold, n_folds)
    pin = dev.type == "cuda"  # pinned host memory: the copy to the GPU does not block
    x = to_tensor(ds.images[split.train])
    y = torch.from_numpy(ds.labels[split.train])
    x, y = (t.pin_memory().to(dev, non_blocking=True) if pin else t.to(dev) for t in (x, y))
    class_weight = None
    if recipe.class_balance:
        counts = torch.bincount(y, minlength=len(ds.classes)).float()
        class_weight = (counts.sum() / (len(counts) * counts.clamp(min=1))).to(dev)
    return TrainingData(ds, split, x, y, class_weight)


def build_model(recipe: Recipe, classes: tuple[str, ...], dev: torch.device) -> EmotionModel:
    """The recipe's architecture, seeded (every process builds the same weights), moved to `dev`."""
    torch.manual_seed(recipe.seed)
    model = create_model(recipe.architecture, recipe.model, num_classes=len(classes)).to(dev)
    if recipe.init_from:
        transfer_weights(model, classes, recipe.init_from)
    return model.to(memory_format=torch.channels_last)


def build_optimiser(
    model: torch.nn.Module, recipe: Recipe, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adam (the paper's) with linear warm-up and cosine decay per step."""
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    total = recipe.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total, recipe.warmup_epochs * steps_per_epoch, recipe.schedule)
    )
    return opt, sched


def _autocast_dtype(precision: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def train_one_epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    recipe: Recipe,
    g: torch.Generator,
    class_weight: torch.Tensor | None = None,
    desc: str = "",
    progress: bool = False,
    proc: Process = Process(),
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[float, int]:
    """One pass over the in-memory training tensors in shuffled batches, augmented on the fly.
    Returns the summed loss and the number of correct predictions (on augmented batches, dropout on), over all
    processes.

    Distributed: every process draws the same permutation and augments the same global batch (one generator,
    seeded alike), then trains on its interleaved shard; the loss is scaled so that DDP's averaged gradient is
    the gradient of the global batch's mean loss, as in one process."""
    model.train()
    core = model.module if hasattr(model, "module") else model
    n, world = len(y_train), proc.world_size
    perm = torch.randperm(n, generator=g, device=x_train.device)
    loss_sum = torch.zeros((), device=x_train.device)
    correct = torch.zeros((), device=x_train.device, dtype=torch.long)
    dtype = _autocast_dtype(recipe.precision)
    for i in tqdm(range(math.ceil(n / recipe.batch_size)), desc=desc, leave=False, disable=not progress):
        idx = perm[i * recipe.batch_size : (i + 1) * recipe.batch_size]
        xb = augment_batch(x_train[idx], recipe.augment, g).contiguous(memory_format=torch.channels_last)
        yb = y_all = y_train[idx]
        if world > 1:
            if len(idx) < world:  # a tail smaller than the number of processes: some would have nothing
                sched.step()
                continue
            xb, yb = xb[proc.rank :: world], yb[proc.rank :: world]
        with torch.autocast(x_train.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            logits = model(xb).float()
        if world > 1:  # sum over the shard / the global batch's weight, x world: DDP averages over processes
            denom = len(y_all) if class_weight is None else class_weight[y_all].sum()
            loss = (
                F.cross_entropy(
                    logits, yb, weight=class_weight, label_smoothing=recipe.label_smoothing, reduction="sum"
                )
                / denom
                * world
            )
        else:
            loss = F.cross_entropy(logits, yb, weight=class_weight, label_smoothing=recipe.label_smoothing)
        loss = loss + recipe.fc_l2 * core.fc_weight_penalty()
        opt.zero_grad(set_to_none=True)
        if scaler is not None:  # fp16: scaled loss, unscaled step, skipped on overflow
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        sched.step()
        loss_sum += loss.detach() * len(y_all) / world  # summed over processes below
        correct += (logits.argmax(1) == yb).sum()
    stats = sum_all(torch.stack([loss_sum.double(), correct.double()]), proc)
    return stats[0].item(), int(stats[1].item())


def warn_slow_bf16(precision: str, device: torch.device) -> None:
    """bf16 autocast on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated: on an AVX2-only AMD EPYC it
    ran the wide network's training step 10x slower than fp32 (12 vs 121 images/s), while on a CPU with
    AVX512-BF16 it was 2x faster. Say so, once, before hours are spent."""
    if precision != "bf16" or torch.device(device).type != "cpu":
        return
    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    if not native:
        print(
            f"warning: the recipe trains in bf16, but this CPU ({torch.backends.cpu.get_cpu_capability()}) has no "
            'native bf16: expect it to be several times slower than fp32 (override with precision = "fp32")',
            file=sys.stderr,
            flush=True,
        )


def same_recipe(saved: dict[str, Any], recipe: Recipe) -> bool:
    """Whether a saved state's recipe is `recipe`; fields added since it was saved count at their defaults."""
    defaults = {f.name: f.default for f in fields(Recipe) if f.default is not MISSING}
    return {**defaults, **saved} == {**defaults, **recipe.to_dict()}


def load_resume_state(state_path: Path, recipe: Recipe, proc: Process) -> dict[str, Any] | None:
    """Rank 0 reads the run's state file; every process gets it (no shared file system needed)."""
    state = None
    if proc.is_main and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if not same_recipe(state["recipe"], recipe):
            state = {"error": f"{state_path} was written by a different recipe; use a new run directory"}
    state = from_main(state, proc)
    if state and "error" in state:
        raise ValueError(state["error"])
    return state


def make_card(
    recipe: Recipe,
    model: EmotionModel,
    data: TrainingData,
    val: dict,
    test: dict,
    fold: int | None,
    elapsed: float,
    dev: torch.device,
    proc: Process,
) -> dict[str, Any]:
    """The model card: data, protocol, framing, recipe, metrics, and how it was trained."""
    ds, split = data.ds, data.split
    protocol = split.protocol
    return {
        "name": recipe.name,
        "dataset": recipe.dataset,
        "protocol": protocol,
        "protocol_note": PROTOCOL_NOTES.get((recipe.dataset, protocol), f"{protocol} split, seed {recipe.seed}"),
        "fold": fold,
        "split_sizes": {"train": int(len(split.train)), "val": int(len(split.val)), "test": int(len(split.test))},
        "classes": list(ds.classes),
        "input": {
            "size": [1, 48, 48],
            "pixels": "grey (PIL 'L'), value/255 in [0, 1]",
            "normalization": {"mean": model.config.mean, "std": model.config.std, "applied_by": "model"},
        },
        "face_crop": FACE_CROP,
        "recipe": recipe.to_dict(),
        "seed": recipe.seed,
        "metrics": {
            part: {
                "accuracy": r["accuracy"],
                "n": r["n"],
                "split": part,
                "protocol": protocol,
                "balanced_accuracy": r["balanced_accuracy"],
                "macro_f1": r["macro_f1"],
            }
            for part, r in (("val", val), ("test", test))
        },
        "per_class_recall": test["per_class"],
        "confusion": test["confusion"],
        "epochs": recipe.epochs,
        "training_time_s": round(elapsed, 1),
        "trained_on": _trained_on(dev, proc),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "licence": LICENCES.get(recipe.dataset, ""),
        "paper": PAPER,
    }


def _trained_on(dev: torch.device, proc: Process) -> str:
    what = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    where = f"{dev.type} ({what}, {torch.get_num_threads()} threads)"
    return where if not proc.distributed else f"{proc.world_size} processes, each {where}"


def train(
    recipe: Recipe,
    data_dir: str | Path,
    *,
    epochs: int | None = None,
    device: str = "auto",
    resume: bool = False,
    run_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    fold: int | None = None,
    n_folds: int = 10,
    compile: bool = False,
) -> ModelCard | None:
    """Train `recipe` on the data under `data_dir`; write the checkpoint and card; return the card.
    `fold` picks one fold of a cross-validation protocol (subject-folds). Under torchrun, each process trains on
    its shard of every batch (DistributedDataParallel) and rank 0 alone logs, evaluates and writes files;
    `compile`: torch.compile the model (GPUs)."""
    if epochs is not None:
        recipe = replace(recipe, epochs=epochs)
    proc, dev = start(resolve_device(device))
    if recipe.precision == "fp16" and dev.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device (on CPUs use fp32, or bf16 where it is native)")
    if proc.is_main:
        warn_slow_bf16(recipe.precision, dev)
    run_dir = Path(run_dir or Path("runs") / recipe.name)
    state_path, log_path, best_path = run_dir / "state.pt", run_dir / "log.jsonl", run_dir / "best.safetensors"
    if proc.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)

    data = load_training_data(recipe, data_dir, dev, fold, n_folds)
    ds, split = data.ds, data.split
    n = len(data.y)
    model = build_model(recipe, ds.classes, dev)
    if proc.distributed and dev.type == "cuda":  # BatchNorm over the global batch, as in one process (NCCL only)
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opt, sched = build_optimiser(model, recipe, math.ceil(n / recipe.batch_size))
    scaler = torch.amp.GradScaler("cuda") if recipe.precision == "fp16" else None

    # selection: highest validation accuracy; among equals, the lowest validation loss (small validation
    # sets such as CK+'s 98 images saturate at 100 %, and the first epoch to get there is seldom the best)
    start_epoch, best_val, best_nll, elapsed = 0, -1.0, float("inf"), 0.0
    state = load_resume_state(state_path, recipe, proc) if resume else None
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best_val, best_nll, elapsed = (
            state["epoch"],
            state["best_val"],
            state.get("best_nll", float("inf")),
            state["elapsed"],
        )
        if proc.is_main:
            print(f"resuming {recipe.name} at epoch {start_epoch + 1}/{recipe.epochs} (best val {best_val:.4f})")
    elif not resume and proc.is_main and log_path.exists():
        log_path.unlink()
    net = wrap(model, proc, dev)  # DDP when distributed; `model` stays the plain module (evaluation, saving)
    net = torch.compile(net) if compile else net

    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        # per-epoch seeds: a resumed run draws the same batches and augmentations as an uninterrupted one;
        # the batch generator is the same on every process, dropout's seed differs per rank
        torch.manual_seed(recipe.seed * 100_003 + epoch + 7919 * proc.rank)
        g = torch.Generator(device=dev).manual_seed(recipe.seed * 100_003 + epoch)
        loss_sum, correct = train_one_epoch(
            net,
            opt,
            sched,
            data.x,
            data.y,
            recipe,
            g,
            data.class_weight,
            desc=f"epoch {epoch + 1}/{recipe.epochs}",
            progress=progress and proc.is_main,
            proc=proc,
            scaler=scaler,
        )
        if not proc.is_main:
            continue
        val = evaluate(model, ds.images[split.val], ds.labels[split.val], ds.classes, device=dev)
        elapsed += time.perf_counter() - t0
        row = {
            "epoch": epoch + 1,
            "loss": round(loss_sum / n, 5),
            "train_acc_augmented": round(correct / n, 5),
            "val_acc": round(val["accuracy"], 5),
            "val_nll": round(val["nll"], 5),
            "lr": opt.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 2),
        }
        with open(log_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if (val["accuracy"], -val["nll"]) > (best_val, -best_nll):
            best_val, best_nll = val["accuracy"], val["nll"]
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(best_path))
        print(
            f"epoch {epoch + 1}/{recipe.epochs} loss {row['loss']:.4f} train(aug) {row['train_acc_augmented']:.4f} "
            f"val {row['val_acc']:.4f} best {best_val:.4f} ({row['seconds']:.1f}s)",
            flush=True,
        )
        _atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch + 1,
                "best_val": best_val,
                "best_nll": best_nll,
                "elapsed": elapsed,
                "recipe": recipe.to_dict(),
                **({"scaler": scaler.state_dict()} if scaler is not None else {}),
            },
            state_path,
        )

    if not proc.is_main:
        stop(proc)
        return None
    # the best-on-validation weights, evaluated once on the test split
    model.load_state_dict(load_file(str(best_path), device=str(dev)))
    model.eval()
    val = evaluate(model, ds.images[split.val], ds.labels[split.val], ds.classes, device=dev)
    test = evaluate(model, ds.images[split.test], ds.labels[split.test], ds.classes, device=dev)
    card = make_card(recipe, model, data, val, test, fold, elapsed, dev, proc)
    out = Path(out_dir) if out_dir else checkpoint_dir()
    save_checkpoint(model, card, out / recipe.name)
    plot_confusion(
        test["confusion"],
        list(ds.classes),
        f"{recipe.name}: test accuracy {test['accuracy']:.4f} ({split.protocol})",
        out / f"{recipe.name}_confusion.png",
    )
    print(f"{recipe.name}: val {val['accuracy']:.4f}, test {test['accuracy']:.4f} -> {out / recipe.name}.safetensors")
    stop(proc)
    return read_card(out / f"{recipe.name}.safetensors")
