import os

import numpy as np
import pytest
from PIL import Image, ImageFile

from tinygray.data import preprocess
from tinygray.data.folders import DataError, load_grayscale, read_images_into, scan_image_folder, split_counts_check

RNG = np.random.default_rng(0)


def noise(shape, dtype=np.uint8, high=256):
    return RNG.integers(0, high, size=shape).astype(dtype)


def save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_folder(root, counts, size=8):
    """root/<class>/<i>.png of random gray noise; returns root."""
    for name, count in counts.items():
        for i in range(count):
            save(root / name / f"{i:04d}.png", Image.fromarray(noise((size, size))))
    return root


# --- pixels: every mode ends as (size, size) uint8 luma ---

@pytest.mark.parametrize("name, image", [
    ("l.png", Image.fromarray(noise((20, 12)))),
    ("rgb.jpg", Image.fromarray(noise((20, 12, 3)))),
    ("rgba.png", Image.fromarray(noise((20, 12, 4)))),
    ("p.png", Image.fromarray(noise((20, 12, 3))).convert("P")),
    ("la.png", Image.fromarray(noise((20, 12, 4))).convert("LA")),
    ("i16.png", Image.fromarray(noise((20, 12), np.uint16, 65536))),
    ("i16.tif", Image.fromarray(noise((20, 12), np.uint16, 65536))),
    ("i32.tif", Image.fromarray(noise((20, 12), np.int32, 65536))),
    ("f.tif", Image.fromarray(RNG.random((20, 12)).astype(np.float32))),
    ("bilevel.png", Image.fromarray(noise((20, 12))).convert("1")),
    ("bilevel.bmp", Image.fromarray(noise((20, 12))).convert("1")),
    ("cmyk.jpg", Image.fromarray(noise((20, 12, 3))).convert("CMYK")),
    ("cmyk.tif", Image.fromarray(noise((20, 12, 3))).convert("CMYK")),
    ("upper.JPEG", Image.fromarray(noise((20, 12, 3)))),
])
def test_every_mode_becomes_square_8bit_gray(tmp_path, name, image):
    pixels = load_grayscale(save(tmp_path / name, image), 16)
    assert pixels.shape == (16, 16) and pixels.dtype == np.uint8


@pytest.mark.parametrize("name", ["gray16.png", "gray16.tif", "gray32.tif"])
def test_high_bit_depth_gray_is_scaled_not_clipped(tmp_path, name):
    values = np.array([[0, 32768], [65535, 257]])
    dtype = np.int32 if "32" in name else np.uint16
    path = save(tmp_path / name, Image.fromarray(values.astype(dtype)))
    np.testing.assert_array_equal(load_grayscale(path, 2), [[0, 128], [255, 1]])


def test_high_bit_depth_is_converted_in_bands_exactly_as_whole(tmp_path, monkeypatch):
    import tinygray.data.folders as folders

    values = noise((37, 23), np.uint16, 65536)
    path = save(tmp_path / "tall16.png", Image.fromarray(values))
    whole = load_grayscale(path, 37)
    monkeypatch.setattr(folders, "LUMA_BAND_PIXELS", 50)  # two rows a band, the last one short
    np.testing.assert_array_equal(load_grayscale(path, 37), whole)
    np.testing.assert_array_equal(np.asarray(folders._to_luma(Image.open(path))),
                                  np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8))


def test_a_huge_16_bit_image_costs_memory_in_proportion_to_its_8_bit_pixels(tmp_path):
    """A 9,400 x 9,400 16-bit PNG of 171 KB (under PIL's bomb limit) peaked at 2.55 GB through float64
    temporaries; now the decoded image (2 bytes a pixel) plus its 8-bit copy, about 0.3 GB over Python's own."""
    import subprocess
    import sys

    side = 9400
    pixels = np.zeros((side, side), dtype=np.uint16)
    pixels[:, : side // 2] = 30000
    save(tmp_path / "huge16.png", Image.fromarray(pixels))
    del pixels
    script = ("import resource, sys; from tinygray.data.folders import load_grayscale; "
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
              "pixels = load_grayscale(sys.argv[1], 64); "
              "print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, pixels[0, 0], pixels[0, -1])")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "huge16.png")], capture_output=True, text=True,
                         check=True).stdout.split()
    before_kb, peak_kb, left, right = map(int, out)
    assert (left, right) == (117, 0)  # 30000 / 257
    assert (peak_kb - before_kb) / 1024 < 3.5 * side * side / 2**20  # MB: 2 bytes decoded + 1 byte gray + slack


def test_an_animated_image_is_refused_not_read_as_its_first_frame(tmp_path):
    frames = [Image.fromarray(noise((8, 8))) for _ in range(3)]
    path = tmp_path / "moving.png"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    from tinygray.data.folders import BadImageError

    with pytest.raises(BadImageError, match=r"moving.png: 3 frames \(animated or multi-page\)"):
        load_grayscale(path, 8)
    pages = tmp_path / "pages.tif"
    frames[0].save(pages, save_all=True, append_images=frames[1:2])
    with pytest.raises(BadImageError, match="2 frames"):
        load_grayscale(pages, 8)


def test_float_gray_is_taken_as_unit_range(tmp_path):
    path = save(tmp_path / "f.tif", Image.fromarray(np.array([[0.0, 0.5], [1.0, 2.0]], dtype=np.float32)))
    np.testing.assert_array_equal(load_grayscale(path, 2), [[0, 128], [255, 255]])


def test_colour_is_bt601_luma_and_alpha_is_dropped(tmp_path):
    red = save(tmp_path / "red.png", Image.new("RGB", (4, 4), (255, 0, 0)))
    assert (load_grayscale(red, 4) == 76).all()
    clear = save(tmp_path / "clear.png", Image.new("RGBA", (4, 4), (200, 200, 200, 0)))
    assert (load_grayscale(clear, 4) == 200).all()


def test_resize_matches_data_resize(tmp_path):
    gray = noise((30, 30))
    path = save(tmp_path / "g.png", Image.fromarray(gray))
    np.testing.assert_array_equal(load_grayscale(path, 12), preprocess.resize(gray[None, ..., None], 12)[0, ..., 0])


# --- bad files: named, with a reason, under both policies ---

def corrupt_bytes(path):
    path.write_bytes(RNG.bytes(500))


def truncated_png(path):
    save(path, Image.fromarray(noise((64, 64))))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def zero_bytes(path):
    path.write_bytes(b"")


def text_file(path):
    path.write_text("not an image\n")


BAD_FILES = [
    ("junk.png", corrupt_bytes, "unreadable image"),
    ("half.png", truncated_png, "truncated"),
    ("empty.png", zero_bytes, "0 bytes"),
    ("notes.txt", text_file, "not an image file"),
]


@pytest.mark.parametrize("name, make, reason", BAD_FILES)
def test_bad_file_fails_naming_it(tmp_path, name, make, reason):
    root = make_folder(tmp_path / "data", {"a": 3, "b": 3})
    make(root / "a" / name)
    paths, labels, _ = scan_image_folder(root)
    assert root / "a" / name in paths
    with pytest.raises(DataError, match=reason) as error:
        read_images_into(np.zeros((len(paths), 8, 8, 1), np.uint8), paths, labels, progress=False)
    assert str(root / "a" / name) in str(error.value)


@pytest.mark.parametrize("name, make, reason", BAD_FILES)
def test_bad_file_is_skipped_and_listed(tmp_path, name, make, reason):
    root = make_folder(tmp_path / "data", {"a": 3, "b": 3})
    make(root / "a" / name)
    paths, labels, _ = scan_image_folder(root)
    out = np.zeros((len(paths), 8, 8, 1), np.uint8)
    kept, skipped = read_images_into(out, paths, labels, on_bad_file="skip", progress=False)
    assert [path for path, _ in skipped] == [root / "a" / name] and reason in skipped[0][1]
    good = [path for path in paths if path.name != name]
    np.testing.assert_array_equal(kept, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(out[:6, ..., 0], [load_grayscale(path, 8) for path in good])


@pytest.mark.parametrize("side", [12, 64])  # 144 pixels warns, 4096 errors, against a limit of 100
def test_decompression_bomb_is_a_bad_file(tmp_path, monkeypatch, side):
    path = save(tmp_path / "big.png", Image.fromarray(noise((side, side))))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match="decompression bomb") as error:
        load_grayscale(path, 8)
    assert str(path) in str(error.value)


def test_loading_truncated_images_is_refused(tmp_path, monkeypatch):
    path = save(tmp_path / "g.png", Image.fromarray(noise((8, 8))))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        load_grayscale(path, 8)


def test_unknown_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="on_bad_file"):
        read_images_into(np.zeros((0, 8, 8, 1), np.uint8), [], np.array([]), on_bad_file="ignore")


# --- folder layout ---

def test_scan_sorts_classes_and_files_and_ignores_hidden(tmp_path):
    root = make_folder(tmp_path / "data", {"dog": 2, "cat": 1})
    save(root / "cat" / "Z.PNG", Image.fromarray(noise((8, 8))))
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    (root / ".cache").mkdir()
    (root / "README.md").write_text("root-level files are not a class\n")
    paths, labels, class_names = scan_image_folder(root)
    assert class_names == ["cat", "dog"]
    assert [p.relative_to(root).as_posix() for p in paths] == [
        "cat/0000.png", "cat/Z.PNG", "dog/0000.png", "dog/0001.png"]
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])
    assert labels.dtype == np.int64


@pytest.mark.parametrize("classes, message", [
    ([], "no class subfolders"),
    (["cat"], "only one class, 'cat'"),
    (["cat", "dog"], "class 'dog' has no image files"),
])
def test_unusable_layout_is_named(tmp_path, classes, message):
    root = make_folder(tmp_path / "data", {name: 3 for name in classes[:1]})
    root.mkdir(exist_ok=True)
    (root / "cat.png").write_bytes(b"")  # files directly in the root are not a class
    for name in classes[1:]:
        (root / name).mkdir()
        (root / name / "notes.txt").write_text("only non-images: as good as empty\n")
    with pytest.raises(DataError, match=message):
        scan_image_folder(root)


def test_missing_root_is_refused(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_image_folder(tmp_path / "data")


def test_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "data").write_text("")
    with pytest.raises(DataError, match="not a directory"):
        scan_image_folder(tmp_path / "data")


def test_symlink_leading_outside_is_refused_naming_the_link(tmp_path):
    outside = make_folder(tmp_path / "elsewhere", {"secret": 1})
    root = make_folder(tmp_path / "data", {"a": 2, "b": 2})
    (root / "a" / "x.png").symlink_to(outside / "secret" / "0000.png")
    with pytest.raises(DataError, match="outside") as error:
        scan_image_folder(root)
    assert str(root / "a" / "x.png") in str(error.value)
    (root / "a" / "x.png").unlink()
    (root / "c").symlink_to(outside / "secret", target_is_directory=True)
    with pytest.raises(DataError, match=f"{root / 'c'}: symlink"):
        scan_image_folder(root)
    assert len(scan_image_folder(root, allowed_root=tmp_path)[0]) == 5  # unless allowed_root takes it in


def test_root_outside_allowed_root_is_refused(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 1, "b": 1})
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="outside allowed_root"):
        scan_image_folder(root, allowed_root=tmp_path / "other")


def test_symlink_inside_the_folder_is_followed(tmp_path):
    """A link that stays inside the folder reads nothing the folder's owner did not put there."""
    root = make_folder(tmp_path / "data", {"a": 2, "b": 2})
    (root / "b" / "copy.png").symlink_to(os.path.relpath(root / "a" / "0000.png", root / "b"))
    paths, labels, _ = scan_image_folder(root)
    assert paths[-1] == root / "b" / "copy.png" and labels[-1] == 1
    np.testing.assert_array_equal(load_grayscale(paths[-1], 8), load_grayscale(root / "a" / "0000.png", 8))


# --- streaming into a memmap ---

def test_reading_into_a_memmap_gives_the_pixels_of_loading_one_by_one(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 300, "b": 300})
    paths, labels, class_names = scan_image_folder(root)
    images = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=(len(paths), 6, 6, 1))
    kept, skipped = read_images_into(images, paths, labels, progress=False)
    images.flush()
    assert skipped == [] and len(kept) == 600 and class_names == ["a", "b"]
    np.testing.assert_array_equal(kept, labels)
    on_disk = np.load(tmp_path / "images.npy", mmap_mode="r")
    for i in (0, 299, 300, 599):
        np.testing.assert_array_equal(on_disk[i, ..., 0], load_grayscale(paths[i], 6))


# --- enough images per class for the split ---

def test_class_with_too_few_images_is_named():
    labels = np.array([0] * 50 + [1] * 9)
    with pytest.raises(DataError, match="class 'dog' has 9") as error:
        split_counts_check(labels, ["cat", "dog"], 0.1, 0.1)
    assert "'cat'" not in str(error.value) and "at least 10" in str(error.value)


def test_class_emptied_by_the_duplicate_guard_says_how_many_it_dropped():
    """49 of a class's 50 images near copies: "has 1 ... needs at least 10" alone read as a near-empty folder."""
    labels = np.array([0] * 50 + [1])
    with pytest.raises(DataError, match=r"class 'dog' has 1 \(49 of its 50 images dropped as near-duplicates\)") as error:
        split_counts_check(labels, ["cat", "dog"], 0.1, 0.1, before_duplicates=np.array([50, 50]))
    assert "duplicates: report" in str(error.value)


def test_class_skipped_to_nothing_is_named():
    with pytest.raises(DataError, match="class 'dog' has 0"):
        split_counts_check(np.zeros(50, np.int64), ["cat", "dog"], 0.1, 0.1)


@pytest.mark.parametrize("val_fraction, test_fraction, minimum", [(0.1, 0.1, 10), (0.2, 0.15, 7), (0.4, 0.45, 20)])
def test_minimum_class_size_is_enough_for_stratified_split(val_fraction, test_fraction, minimum):
    labels = np.repeat([0, 1, 2], minimum)
    split_counts_check(labels, ["a", "b", "c"], val_fraction, test_fraction)
    one_short = np.repeat([0, 1, 2], [minimum, minimum, minimum - 1])
    with pytest.raises(DataError, match=f"class 'c' has {minimum - 1}"):
        split_counts_check(one_short, ["a", "b", "c"], val_fraction, test_fraction)
    for seed in range(5):
        for split in preprocess.stratified_split(labels, val_fraction, test_fraction, seed).values():
            assert set(labels[split]) == {0, 1, 2}


def test_non_square_images_are_squashed_cropped_or_padded(tmp_path):
    wide = np.zeros((10, 30), np.uint8)
    wide[:, :10], wide[:, 10:20], wide[:, 20:] = 50, 150, 250  # three squares side by side
    path = save(tmp_path / "wide.png", Image.fromarray(wide))
    squashed, cropped, padded = (load_grayscale(path, 6, mode) for mode in ("squash", "crop", "pad"))
    assert squashed[:, 0].max() <= 60 and squashed[:, -1].min() >= 240  # all three squares, narrowed
    assert (cropped == 150).all()  # the centre square alone
    assert (padded[0] == 0).all() and (padded[-1] == 0).all()  # black above and below
    assert padded[2:4, 0].max() <= 60 and padded[2:4, -1].max() >= 200  # the whole width kept (edges blend with black)
    with pytest.raises(ValueError, match="resize must be one of"):
        load_grayscale(path, 6, "stretch")
