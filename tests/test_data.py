"""Each reader on miniature data sets written here, in every layout, and on each error case."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deep_emotion.errors import DataLayoutError
from deep_emotion.training.data import (
    load_dataset,
    majority_label,
    read_ckplus,
    read_fer2013,
    read_ferg,
    read_ferplus,
    read_folder,
    read_jaffe,
)
from deep_emotion.training.data.fer2013 import CLASSES as FER_CLASSES

RNG = np.random.default_rng(0)


def grey(size: int = 48, value: int | None = None) -> Image.Image:
    arr = (
        RNG.integers(0, 256, (size, size), dtype=np.uint8) if value is None else np.full((size, size), value, np.uint8)
    )
    return Image.fromarray(arr)


# --- FER2013 ---------------------------------------------------------------------------------

FER_ROWS = [
    (0, "Training"),
    (3, "Training"),
    (6, "Training"),
    (3, "PublicTest"),
    (2, "PrivateTest"),
    (5, "PrivateTest"),
]


def write_fer_csv(path: Path, header: str, leading_space: bool = False) -> None:
    lines = [header]
    for i, (label, usage) in enumerate(FER_ROWS):
        pixels = " ".join(str((i * 40 + j) % 256) for j in range(2304))
        cols = {"emotion": str(label), "pixels": pixels, "Usage": usage}
        order = [c.strip() for c in header.split(",")]
        lines.append(",".join(cols[c] for c in order))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "name,header", [("fer2013.csv", "emotion,pixels,Usage"), ("icml_face_data.csv", "emotion, Usage, pixels")]
)
def test_fer2013_csv(tmp_path, name, header):
    write_fer_csv(tmp_path / name, header)
    for root in (tmp_path, tmp_path / name):  # the folder or the file itself
        ds = read_fer2013(root)
        assert ds.images.shape == (6, 48, 48) and ds.images.dtype == np.uint8
        assert ds.labels.tolist() == [r[0] for r in FER_ROWS]
        assert ds.classes == FER_CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
        assert ds.images[1, 0, 0] == 40 and ds.images[1, 0, 1] == 41
        split = ds.split("paper")
        assert split.train.tolist() == [0, 1, 2] and split.val.tolist() == [3] and split.test.tolist() == [4, 5]


def test_fer2013_csv_missing_column(tmp_path):
    (tmp_path / "fer2013.csv").write_text("emotion,Usage\n0,Training\n")
    with pytest.raises(DataLayoutError, match="missing column.*pixels"):
        read_fer2013(tmp_path)


def test_fer2013_csv_bad_rows(tmp_path):
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n9," + " ".join(["1"] * 2304) + ",Training\n")
    with pytest.raises(DataLayoutError, match="emotion 9"):
        read_fer2013(tmp_path)
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n1,1 2 3,Training\n")
    with pytest.raises(DataLayoutError, match="3 pixel values"):
        read_fer2013(tmp_path)


def write_fer_folders(root: Path) -> None:
    files = {
        "train/happy/Training_1.jpg": 200,
        "train/angry/Training_2.jpg": 10,
        "train/neutral/Training_3.jpg": 100,
        "test/sad/PublicTest_4.jpg": 50,
        "test/happy/PrivateTest_5.jpg": 220,
        "test/surprise/PrivateTest_6.jpg": 150,
    }
    for rel, value in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        grey(value=value).save(root / rel, quality=95)


def test_fer2013_folders(tmp_path):
    write_fer_folders(tmp_path)
    ds = read_fer2013(tmp_path)
    assert len(ds) == 6
    names = [ds.classes[y] for y in ds.labels]
    split = ds.split("paper")
    assert sorted(names[i] for i in split.train) == ["angry", "happy", "neutral"]
    assert [names[i] for i in split.val] == ["sad"]
    assert sorted(names[i] for i in split.test) == ["happy", "surprise"]
    happy_train = [i for i in split.train if names[i] == "happy"][0]
    assert abs(int(ds.images[happy_train].mean()) - 200) <= 2


def test_fer2013_folders_unknown_class(tmp_path):
    write_fer_folders(tmp_path)
    (tmp_path / "train" / "bored").mkdir()
    with pytest.raises(DataLayoutError, match="unknown class folder.*bored"):
        read_fer2013(tmp_path)


def test_fer2013_wrong_layout(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataLayoutError, match="neither fer2013.csv"):
        read_fer2013(tmp_path)
    with pytest.raises(DataLayoutError, match="does not exist"):
        read_fer2013(tmp_path / "missing")


def test_fer2013_paper_protocol_needs_official_names(tmp_path):
    for rel in ("train/happy/a.jpg", "test/happy/b.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        grey().save(tmp_path / rel)
    ds = read_fer2013(tmp_path)
    with pytest.raises(ValueError, match="needs the official parts"):
        ds.split("paper")


def test_cache_outside_data_and_reused(tmp_path, monkeypatch):
    write_fer_folders(tmp_path / "data")
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEEP_EMOTION_CACHE", str(cache))
    before = sorted(p.relative_to(tmp_path / "data") for p in (tmp_path / "data").rglob("*"))
    first = read_fer2013(tmp_path / "data")
    assert len(list(cache.glob("*.npz"))) == 1
    assert sorted(p.relative_to(tmp_path / "data") for p in (tmp_path / "data").rglob("*")) == before
    second = read_fer2013(tmp_path / "data")
    assert np.array_equal(first.images, second.images)
    # a changed file changes the key: the cache is rebuilt, not served stale
    target = tmp_path / "data/train/happy/Training_1.jpg"
    grey(value=20).save(target, quality=95)
    os.utime(target, ns=(1, 1))
    third = read_fer2013(tmp_path / "data")
    assert len(list(cache.glob("*.npz"))) == 2
    assert not np.array_equal(first.images, third.images)


# --- FERPlus ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "votes,expected",
    [
        ([10, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0),  # unanimous neutral
        ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], None),  # 4 of 9 after dropping the single vote: no majority
        ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], 0),  # 6 of 8 after dropping single votes
        ([0, 0, 0, 0, 0, 0, 0, 0, 7, 3], None),  # unknown wins: left out
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], None),  # not a face
        ([0, 0, 0, 0, 0, 0, 0, 6, 2, 2], 7),  # contempt
        ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], None),  # a tie is no majority
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], None),  # all single votes removed
    ],
)
def test_ferplus_majority_rule(votes, expected):
    assert majority_label([float(v) for v in votes]) == expected


def write_ferplus(root: Path) -> None:
    rows = {
        "FER2013Train": [
            [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
        ],
        "FER2013Valid": [[0, 0, 8, 2, 0, 0, 0, 0, 0, 0]],
        "FER2013Test": [[0, 0, 0, 0, 0, 0, 0, 10, 0, 0]],
    }
    n = 0
    for part, votes in rows.items():
        (root / part).mkdir(parents=True)
        lines = []
        for v in votes:
            name = f"fer{n:07d}.png"
            grey(value=n * 20).save(root / part / name)
            lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, v)))
            n += 1
        (root / part / "label.csv").write_text("\n".join(lines) + "\n")


def test_ferplus(tmp_path):
    write_ferplus(tmp_path)
    ds = read_ferplus(tmp_path)
    assert ds.classes[:2] == ("neutral", "happiness") and len(ds.classes) == 8
    assert [ds.classes[y] for y in ds.labels] == ["neutral", "happiness", "surprise", "contempt"]  # NF image left out
    split = ds.split("official")
    assert len(split.train) == 2 and len(split.val) == 1 and len(split.test) == 1


def test_ferplus_errors(tmp_path):
    with pytest.raises(DataLayoutError, match="FER2013Train/label.csv"):
        read_ferplus(tmp_path)
    write_ferplus(tmp_path)
    (tmp_path / "FER2013Test" / "fer0000004.png").unlink()
    with pytest.raises(DataLayoutError, match="fer0000004.png is missing"):
        read_ferplus(tmp_path)
    (tmp_path / "FER2013Test" / "label.csv").write_text("fer0000004.png,1,2\n")
    with pytest.raises(DataLayoutError, match="expected 12"):
        read_ferplus(tmp_path)


# --- CK+, JAFFE, FERG, generic folder -------------------------------------------------------


def test_ckplus(tmp_path):
    for cls, subj in [("anger", "S010"), ("happy", "S010"), ("happy", "S011"), ("contempt", "S012")]:
        (tmp_path / cls).mkdir(exist_ok=True)
        for frame in (17, 18, 19):
            grey().save(tmp_path / cls / f"{subj}_004_{frame:08d}.png")
    ds = read_ckplus(tmp_path)
    assert len(ds) == 12 and ds.classes[0] == "anger" and len(ds.classes) == 7
    assert sorted(set(ds.subjects)) == ["S010", "S011", "S012"]
    (tmp_path / "happy" / "photo.png").write_bytes(b"")
    with pytest.raises(DataLayoutError, match="S<subject>_<sequence>_<frame>"):
        read_ckplus(tmp_path)


def test_ckplus_unknown_class_and_empty(tmp_path):
    with pytest.raises(DataLayoutError, match="no class folders"):
        read_ckplus(tmp_path)
    (tmp_path / "joy").mkdir()
    with pytest.raises(DataLayoutError, match="unknown class folder"):
        read_ckplus(tmp_path)


def test_jaffe(tmp_path):
    for subj in ("KA", "KL"):
        for i, code in enumerate(["AN", "DI", "FE", "HA", "NE", "SA", "SU"]):
            grey(256).save(tmp_path / f"{subj}.{code}1.{i + 10}.tiff")
    Image.new("P", (256, 256)).save(tmp_path / "YM.HA2.99.tiff")  # palette files exist in the real set
    (tmp_path / "README").write_text("not an image")
    ds = read_jaffe(tmp_path, crop_faces=False)
    assert len(ds) == 15 and ds.images.shape[1:] == (48, 48)
    assert ds.classes == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    assert ds.classes[ds.labels[-1]] == "happy" and ds.subjects[-1] == "YM"
    grey(256).save(tmp_path / "KA.XX1.1.tiff")
    with pytest.raises(DataLayoutError, match="unknown emotion code XX"):
        read_jaffe(tmp_path, crop_faces=False)


def test_ferg(tmp_path):
    base = tmp_path / "FERG_DB_256"
    for char in ("aia", "ray"):
        for expr in ("joy", "anger"):
            d = base / char / f"{char}_{expr}"
            d.mkdir(parents=True)
            for n in range(2):
                Image.new("RGBA", (256, 256), (200, 100, 50, 255)).save(d / f"{char}_{expr}_{n}.png")
    for root in (tmp_path, base):
        ds = read_ferg(root)
        assert len(ds) == 8 and set(ds.subjects) == {"aia", "ray"}
        assert sorted({ds.classes[y] for y in ds.labels}) == ["anger", "joy"]
    (base / "aia" / "aia_bored").mkdir()
    with pytest.raises(DataLayoutError, match="<character>_<expression>"):
        read_ferg(tmp_path)


def test_generic_folder(tmp_path):
    for cls in ("b_sad", "a_happy"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            grey(64).convert("RGB").save(tmp_path / cls / f"{i}.jpg")
    ds = read_folder(tmp_path)
    assert ds.classes == ("a_happy", "b_sad") and len(ds) == 10 and ds.images.shape == (10, 48, 48)
    split = ds.split("random", seed=3)
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == list(range(10))
    (tmp_path / "c_empty").mkdir()
    with pytest.raises(DataLayoutError, match="holds no images"):
        read_folder(tmp_path)


def test_undecodable_image_names_the_file(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataLayoutError, match="broken.png"):
        read_folder(tmp_path)


def test_load_dataset_by_name(tmp_path):
    write_fer_folders(tmp_path / "fer2013")
    assert len(load_dataset("fer2013", tmp_path)) == 6  # parent folder holding the set by name
    with pytest.raises(DataLayoutError, match="unknown data set"):
        load_dataset("affectnet", tmp_path)


def test_real_fer2013(data_root):
    ds = load_dataset("fer2013", data_root)
    split = ds.split("paper")
    assert (len(split.train), len(split.val), len(split.test)) == (28709, 3589, 3589)
