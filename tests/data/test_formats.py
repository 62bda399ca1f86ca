import numpy as np
import pytest
from PIL import Image

from synreal.data.formats import known_formats, scan
from synreal.data.manifest import build_manifest, load_rgb, manifest_hash
from synreal.errors import DataError


def _png(path, colour=(10, 200, 30), mode="RGB", size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else None).save(path)


def test_afhq_official_val_split_is_test(tmp_path):
    for split in ("train", "val"):
        for cls in ("cat", "dog", "wild"):
            _png(tmp_path / split / cls / f"flickr_{cls}_000001.jpg")
    records = scan("afhq", tmp_path)
    assert {r.split for r in records} == {"train", "test"}
    assert {r.label_name: r.label for r in records} == {"cat": 0, "dog": 1, "wild": 2}


def test_oxford_pet_official_annotation_lines(tmp_path):
    for name in ("Abyssinian_1", "american_bulldog_10", "Abyssinian_2"):
        _png(tmp_path / "images" / f"{name}.jpg")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "trainval.txt").write_text(
        "Abyssinian_1 1 1 1\namerican_bulldog_10 2 2 1\n")
    (tmp_path / "annotations" / "test.txt").write_text("Abyssinian_2 1 1 1\n")
    records = scan("oxford_pet", tmp_path)
    assert [(r.relpath, r.label, r.label_name, r.split) for r in records] == [
        ("images/Abyssinian_1.jpg", 0, "Abyssinian", "trainval"),
        ("images/american_bulldog_10.jpg", 1, "american_bulldog", "trainval"),
        ("images/Abyssinian_2.jpg", 0, "Abyssinian", "test"),
    ]


def test_oxford_pet_bad_line_names_file_and_line(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1\n")
    (tmp_path / "annotations" / "test.txt").write_text("")
    with pytest.raises(DataError, match=r"trainval.txt:1 is not"):
        scan("oxford_pet", tmp_path)


@pytest.mark.parametrize("with_splits", [True, False])
def test_imagefolder_with_and_without_split_folders(tmp_path, with_splits):
    prefix = tmp_path / "train" if with_splits else tmp_path
    _png(prefix / "b" / "1.png")
    _png(prefix / "a" / "1.png")
    records = scan("imagefolder", tmp_path)
    assert [(r.label_name, r.label, r.split) for r in records] == [("a", 0, "train"),
                                                                     ("b", 1, "train")]


def test_unknown_format_and_missing_folder(tmp_path):
    with pytest.raises(DataError, match="known:"):
        scan("coco", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        scan("afhq", tmp_path / "missing")
    assert set(known_formats()) == {"afhq", "oxford_pet", "imagefolder"}


@pytest.fixture
def messy(tmp_path):
    root = tmp_path / "messy"
    _png(root / "good" / "rgb.png")
    _png(root / "good" / "gray.png", mode="L")
    Image.new("CMYK", (5, 5), (0, 255, 0, 0)).save(root / "good" / "cmyk.jpg")
    Image.new("RGBA", (5, 5), (1, 2, 3, 128)).save(root / "good" / "rgba.png")
    Image.fromarray(np.full((5, 5), 40000, dtype=np.uint16)).save(root / "good" / "deep.png")
    _png(root / "good" / "black.png", colour=(0, 0, 0))
    (root / "bad").mkdir()
    (root / "bad" / "empty.png").write_bytes(b"")
    (root / "bad" / "text.jpg").write_text("not an image")
    data = (root / "good" / "rgb.png").read_bytes()
    (root / "bad" / "truncated.png").write_bytes(data[: len(data) // 2])
    return root


def test_manifest_skips_and_reports_bad_files(messy):
    manifest, problems = build_manifest(messy, scan("imagefolder", messy), on_corrupt="skip")
    assert sorted(problems["relpath"]) == ["bad/empty.png", "bad/text.jpg", "bad/truncated.png"]
    assert "zero-byte" in problems.set_index("relpath").loc["bad/empty.png", "reason"]
    assert len(manifest) == 6
    modes = dict(zip(manifest["relpath"], manifest["mode"], strict=True))
    assert modes["good/cmyk.jpg"] == "CMYK" and modes["good/deep.png"].startswith("I")
    assert manifest.set_index("relpath").loc["good/black.png", "constant"]
    for path in manifest["path"]:
        assert load_rgb(path).shape[2] == 3


def test_manifest_fail_mode_names_the_file(messy):
    with pytest.raises(DataError, match=r"bad/empty.png: zero-byte file \(3 bad"):
        build_manifest(messy, scan("imagefolder", messy), on_corrupt="fail")


def test_manifest_hash_is_order_independent(messy):
    manifest, _ = build_manifest(messy, scan("imagefolder", messy), on_corrupt="skip")
    assert manifest_hash(manifest) == manifest_hash(manifest.iloc[::-1])
    changed = manifest.copy()
    changed.loc[0, "label"] = 99
    assert manifest_hash(changed) != manifest_hash(manifest)
