"""The command line on a small checkpoint trained here, the astronaut photo and bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from deep_emotion.cli import main
from deep_emotion.training import loop as training

from .test_training import RECIPE


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import numpy as np

    from .conftest import pattern_face

    base = tmp_path_factory.mktemp("cli")
    root = base / "patterns"
    rng = np.random.default_rng(1)
    for name, kind in (("blob", 2), ("horizontal", 0), ("vertical", 1)):
        (root / name).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(pattern_face(kind, rng)).save(root / name / f"{i}.png")
    card = training.train(replace(RECIPE, epochs=3), root, run_dir=base / "run", out_dir=base / "ckpt", progress=False)
    return root, base / "ckpt", card


def test_models_lists_checkpoints(trained, monkeypatch, capsys):
    _, ckpt, card = trained
    monkeypatch.setenv("DEEP_EMOTION_CHECKPOINTS", str(ckpt))
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "name": "patterns",
            "dataset": "folder",
            "architecture": "paper",
            "classes": ["blob", "horizontal", "vertical"],
            "labels": ["blob", "horizontal", "vertical"],
            "test_accuracy": card.metrics["test"].accuracy,
            "protocol": "random",
        }
    ]


def test_evaluate_reproduces_card(trained, capsys):
    root, ckpt, card = trained
    assert main(["evaluate", "--model", str(ckpt / "patterns.safetensors"), "--data-dir", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"accuracy", "n", "classes", "per_class", "confusion"} <= set(out)
    assert out["accuracy"] == card.metrics["test"].accuracy and out["n"] == card.metrics["test"].n
    assert out["confusion"] == [list(row) for row in card.confusion] and len(card.confusion) == 3


def test_evaluate_several_models_one_answer_each(trained, tmp_path, capsys):
    import shutil

    root, ckpt, card = trained
    shutil.copy(ckpt / "patterns.safetensors", tmp_path / "other.safetensors")
    (tmp_path / "other.json").write_text(json.dumps({**card.to_dict(), "name": "other"}))
    models = f"{ckpt / 'patterns.safetensors'},{tmp_path / 'other.safetensors'}"
    assert main(["evaluate", "--model", models, "--data-dir", str(root), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # one JSON object per model
    out = [json.loads(line) for line in lines]
    assert [o["model"] for o in out] == ["patterns", "other"]
    assert out[0]["accuracy"] == out[1]["accuracy"] == card.metrics["test"].accuracy  # the same weights
    assert main(["evaluate", "--model", models, "--data-dir", str(root)]) == 0
    printed = capsys.readouterr().out
    assert printed.count(" on folder test (random): accuracy ") == 2
    assert printed.startswith("patterns on folder") and "\nother on folder" in printed


def test_evaluate_unknown_model(capsys):
    assert main(["evaluate", "--model", "no-such-model", "--data-dir", "."]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_predict_faces_and_bad_files(trained, astronaut_path, tmp_path, capsys):
    _, ckpt, _ = trained
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is text, not a JPEG")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    rc = main(
        ["predict", str(bad), str(astronaut_path), str(blank), "--model", str(ckpt / "patterns.safetensors"), "--json"]
    )
    captured = capsys.readouterr()
    assert rc == 2
    assert "notes.jpg: not a readable image" in captured.err
    results = json.loads(captured.out)
    assert [r["image"] for r in results] == [str(astronaut_path), str(blank)]
    (face,) = results[0]["faces"]
    assert face["face"] == 1 and face["detected"] is True and list(face["models"]) == ["patterns"]
    said = face["models"]["patterns"]
    assert said["top"] in ("blob", "horizontal", "vertical") and face["majority"] == said["top"]
    assert said["top"] == max(said["probabilities"], key=said["probabilities"].get)
    assert sum(said["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    x0, y0, x1, y1 = face["box"]
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 200  # the astronaut's face
    assert results[1]["faces"] == []


def test_predict_no_detect_text(trained, tmp_path, capsys):
    _, ckpt, _ = trained
    import numpy as np

    from .conftest import pattern_face

    path = tmp_path / "stripes.png"
    Image.fromarray(pattern_face(1, np.random.default_rng(5))).save(path)
    assert main(["predict", str(path), "--no-detect", "--model", str(ckpt / "patterns.safetensors")]) == 0
    assert "vertical" in capsys.readouterr().out


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "deep_emotion", "--help"], capture_output=True, text=True, check=True)
    for verb in ("train", "evaluate", "predict", "models"):
        assert verb in out.stdout


def test_explain_writes_only_into_out(trained, astronaut_path, tmp_path, capsys):
    _, ckpt, _ = trained
    out = tmp_path / "nested" / "out"
    rc = main(
        [
            "explain",
            str(astronaut_path),
            "--model",
            str(ckpt / "patterns.safetensors"),
            "--window",
            "12",
            "--stride",
            "6",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    from deep_emotion.results import DEFAULT_METHODS

    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        ["face.png", "patterns-stn_view.png", "panel.png", "explanation.json"]
        + [f"patterns-{m}.png" for m in DEFAULT_METHODS]
    )
    view = summary["faces"][0]["models"]["patterns"]
    assert view["top"] in ("blob", "horizontal", "vertical") and len(view["theta"]) == 2
    assert view["target"] == view["top"] and list(view["maps"]) == list(DEFAULT_METHODS)
    assert set(view["faithfulness"]) == set(DEFAULT_METHODS) | {"random"}
    assert view["maps"]["occlusion-flip"]["forward_passes"] == 49  # 7 x 7 windows of 12 at stride 6
    assert summary["options"]["window"] == 12


def test_explain_methods_and_target(trained, astronaut_path, tmp_path, capsys):
    _, ckpt, _ = trained
    model = str(ckpt / "patterns.safetensors")
    argv = [
        "explain",
        str(astronaut_path),
        "--model",
        model,
        "--out",
        str(tmp_path / "o"),
        "--methods",
        "regions,gradcam",
    ]
    assert main(argv + ["--target", "blob", "--no-faithfulness", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)["faces"][0]["models"]["patterns"]
    assert view["target"] == "blob" and list(view["maps"]) == ["regions", "gradcam"] and "faithfulness" not in view
    assert set(view["maps"]["regions"]["regions"]) <= {"eyes", "brows", "nose", "mouth", "rest"}
    assert main(argv + ["--target", "happy"]) == 2
    assert "--target 'happy'" in capsys.readouterr().err
    assert main(argv[:-1] + ["regions,nope"]) == 2
    assert "unknown explanation method(s) 'nope'" in capsys.readouterr().err


def test_explain_no_face(trained, tmp_path, capsys):
    _, ckpt, _ = trained
    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 90), (30, 90, 160)).save(blank)
    assert (
        main(["explain", str(blank), "--model", str(ckpt / "patterns.safetensors"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "no face found" in capsys.readouterr().err


def test_photo_options_need_as_photos(capsys):
    assert main(["evaluate", "--model", "fer2013", "--data-dir", ".", "--limit", "5"]) == 2
    assert "apply to --as-photos only" in capsys.readouterr().err
    assert main(["evaluate", "--model", "fer2013", "--data-dir", ".", "--as-photos", "tight", "--tta"]) == 2
    assert "--tta does not apply" in capsys.readouterr().err
    assert main(["evaluate", "--model", "fer2013", "--data-dir", ".", "--tta", "--posthoc"]) == 2
    assert "already average" in capsys.readouterr().err


def test_evaluate_as_photos_on_real_faces(data_root, capsys):
    assert (
        main(
            [
                "evaluate",
                "--model",
                "fer2013",
                "--data-dir",
                str(data_root),
                "--as-photos",
                "tight-x4",
                "--limit",
                "24",
                "--posthoc",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 24 and set(out["variants"]) == {"crop", "tight-x4"}
    tight = out["variants"]["tight-x4"]
    assert tight["found"] >= tight["found_by_mtcnn"] and tight["found"] > 0.9
    assert out["posthoc"]["tta_flip"] is True and out["framing"]["inside"] is True


def test_predict_csv_marks_whole_picture_reads(trained, tmp_path):
    import csv

    _, ckpt, _ = trained
    rng = np.random.default_rng(0)
    crop = tmp_path / "crop.png"
    Image.fromarray(rng.integers(0, 255, (100, 100), dtype=np.uint8)).save(crop)  # a small square picture, no face
    out = tmp_path / "faces.csv"
    assert main(["predict", str(crop), "--model", str(ckpt / "patterns.safetensors"), "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["detected"] == "0" and rows[0]["face"] == "1"
    assert rows[0]["model"] == "patterns" and rows[0]["top"] in ("blob", "horizontal", "vertical")
    assert sum(float(rows[0][f"p_{c}"]) for c in ("blob", "horizontal", "vertical")) == pytest.approx(1, abs=1e-3)
