"""Images without labels (preprocess.unlabeled_dir): read at any depth, refused by name when there is nothing to
read, guarded against near-duplicates of validation and test images, and learnt from the teacher alone."""
import numpy as np
import pytest
from PIL import Image

from tinygray.data import prepared, unlabeled
from tinygray.distill import losses
from tinygray.data.augment import Augmentation
from tinygray.pipeline.params import ParamsError, from_dict, load_params
from tinygray.distill.soft_targets import distillation_data, write

SIZE = 16


def picture(seed: int) -> np.ndarray:
    """A 16x16 gray image with structure (a blurred random pattern), unlike any other seed's."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, (4, 4)), np.ones((4, 4))).astype(np.uint8)


def save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def test_images_at_any_depth_are_read_and_hidden_ones_ignored(tmp_path):
    save(tmp_path / "a.png", picture(1))
    save(tmp_path / "scanner2" / "2024" / "b.png", picture(2))
    save(tmp_path / ".thumbnails" / "c.png", picture(3))
    (tmp_path / ".DS_Store").write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in unlabeled.scan(tmp_path)] == ["a.png", "scanner2/2024/b.png"]


@pytest.mark.parametrize("make", [lambda root: None, lambda root: root.mkdir(),
                                  lambda root: (root.mkdir(), (root / "notes.txt").write_text("x"))])
def test_a_missing_or_imageless_folder_is_refused_by_name(tmp_path, make):
    root = tmp_path / "unlabelled"
    make(root)
    with pytest.raises(prepared.DataError, match=r"'preprocess.unlabeled_dir'.*unlabelled"):
        unlabeled.scan(root)


def held_out():
    return [np.stack([picture(s) for s in (10, 11)])[..., None], np.stack([picture(s) for s in (12, 13)])[..., None]]


def test_near_duplicates_of_validation_and_test_images_are_dropped_before_the_teacher_sees_them(tmp_path):
    root, out = tmp_path / "unlabelled", tmp_path / "unlabeled_out"
    copy = picture(12).astype(np.int16) + 2  # a test image, a little brighter
    save(root / "copy_of_test.png", np.clip(copy, 0, 255).astype(np.uint8))
    save(root / "new1.png", picture(20))
    save(root / "new2.png", picture(21))
    found = unlabeled.prepare(root, out, image_size=SIZE, resize="squash", on_bad_file="fail", held_out=held_out(),
                              progress=False)
    assert (found["found"], found["near_duplicates_of_val_or_test"], found["kept"]) == (3, 1, 2)
    images = prepared.read_unlabeled(out)
    np.testing.assert_array_equal(images[..., 0], np.stack([picture(20), picture(21)]))


def test_unreadable_files_follow_on_bad_file_and_none_readable_is_refused(tmp_path):
    root, out = tmp_path / "unlabelled", tmp_path / "unlabeled_out"
    save(root / "good.png", picture(30))
    (root / "broken.png").write_bytes(b"not a png")
    with pytest.raises(prepared.DataError, match="broken.png"):
        unlabeled.prepare(root, out, image_size=SIZE, resize="squash", on_bad_file="fail", held_out=held_out(),
                          progress=False)
    assert not out.exists()
    found = unlabeled.prepare(root, out, image_size=SIZE, resize="squash", on_bad_file="skip", held_out=held_out(),
                              progress=False)
    assert found["unreadable"] == 1 and found["kept"] == 1 and "broken.png" in next(iter(found["skipped_files"]))
    (root / "good.png").unlink()
    with pytest.raises(prepared.DataError, match=r"'preprocess.unlabeled_dir': no readable image"):
        unlabeled.prepare(root, tmp_path / "other", image_size=SIZE, resize="squash", on_bad_file="skip",
                          held_out=held_out(), progress=False)


def test_params_refuse_an_unlabeled_dir_that_is_not_a_folder(tmp_path):
    raw = load_params().model_dump()
    raw["preprocess"]["unlabeled_dir"] = str(tmp_path / "nowhere")
    with pytest.raises(ParamsError, match=r"'preprocess.unlabeled_dir' must be an existing folder"):
        from_dict(raw, "params.yaml")


def test_an_unlabelled_image_learns_from_the_teacher_alone():
    """Its packed label is all zeros, so the hard-label term is 0 and the loss is the soft term alone."""
    teacher_logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.2, 0.1]], np.float32)
    packed = losses.pack_targets(np.array([1, -1]), teacher_logits)
    np.testing.assert_array_equal(packed[:, :3], [[0, 1, 0], [0, 0, 0]])
    student_logits = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
    full = np.asarray(losses.distillation_loss(packed, student_logits, 2.0, 0.5))
    soft_only = np.asarray(losses.distillation_loss(packed, student_logits, 2.0, 0.0))
    assert full[1] == pytest.approx(0.5 * soft_only[1], rel=1e-5)
    assert full[0] > 0.5 * soft_only[0]  # the labelled image pays its cross-entropy too
    assert np.asarray(losses.label_accuracy(packed, student_logits)).tolist() == [1.0, 1.0]  # 2nd: the teacher's class


def test_distillation_data_puts_the_unlabelled_images_after_the_training_images(tmp_path):
    out = tmp_path / "prepared"
    images = np.stack([picture(s) for s in range(4)])[..., None]
    prepared.write_prepared(out, {"train": (images[:2], np.array([0, 1])), "val": (images[2:3], np.array([1])),
                                  "test": (images[3:], np.array([0]))}, ["a", "b"])
    prepared.write_unlabeled(tmp_path / "unlabeled", images[2:])
    augmentation = Augmentation(views=1, max_rotation=0, max_shift=0, max_scale=0, flip=False, seed=0)
    targets = tmp_path / "soft"
    targets.mkdir()
    write(targets, np.zeros((1, 4, 2), np.float32), np.zeros((1, 2), np.float32), augmentation)
    (train_images, train_targets), _ = distillation_data(out, targets, augmentation, tmp_path / "unlabeled")
    np.testing.assert_array_equal(train_images, images[[0, 1, 2, 3]])
    np.testing.assert_array_equal(train_targets[0, :, :2], [[1, 0], [0, 1], [0, 0], [0, 0]])
    prepared.write_unlabeled(tmp_path / "none", images[:0])  # no unlabeled_dir: an empty set, the splits alone
    assert prepared.read_unlabeled(tmp_path / "none") is None
    write(targets, np.zeros((1, 2, 2), np.float32), np.zeros((1, 2), np.float32), augmentation)
    assert len(distillation_data(out, targets, augmentation, tmp_path / "none")[0][0]) == 2


@pytest.mark.parametrize("where", ["same", "inside", "around", "test_dir"])
def test_params_refuse_an_unlabeled_dir_that_overlaps_a_labelled_folder(tmp_path, where):
    """The training (or held-out) images would come back as 'unlabelled' and count twice (issue 48, item 6)."""
    train, test = tmp_path / "raw", tmp_path / "test"
    (train / "cat").mkdir(parents=True)
    (test / "cat").mkdir(parents=True)
    unlabeled = {"same": train, "inside": train / "cat", "around": tmp_path, "test_dir": test}[where]
    raw = load_params().model_dump()
    raw["preprocess"].update(dataset="folder", image_dir=str(train), test_dir=str(test), unlabeled_dir=str(unlabeled))
    with pytest.raises(ParamsError, match=r"'preprocess.unlabeled_dir' .* and 'preprocess.(image|test)_dir' .* overlap"):
        from_dict(raw, "params.yaml")
    raw["preprocess"]["unlabeled_dir"] = str(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    assert from_dict(raw, "params.yaml").preprocess.unlabeled_dir == str(tmp_path / "elsewhere")
