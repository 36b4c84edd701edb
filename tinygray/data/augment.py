"""Seeded augmented views of the training images, the same for teacher and student.

"A good teacher is patient and consistent" (Beyer et al., 2022): distillation works when the student
sees many views of each image and learns the teacher's output *for that very view*. The views stage
computes views 0..views-1 of every training image once (StoredViews); the soft_targets stage stores the
teacher's logits for each, and the student stages train on the same pixels. Every view is drawn from
(seed, view, image index) alone. View 0 is the image itself.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from tinygray.pipeline import progress

if TYPE_CHECKING:
    from tinygray.pipeline.params import Augment


@dataclass(frozen=True)
class Augmentation:
    views: int = 1             # views per training image; epoch e of a student trains on view e mod views
    max_rotation: float = 0.0  # degrees, uniform in [-max_rotation, max_rotation]
    max_shift: float = 0.0     # fraction of the image side, per axis
    max_scale: float = 0.0     # zoom uniform in [1 - max_scale, 1 + max_scale]
    flip: bool = False         # mirror left-right with probability 1/2: right for clothes, wrong for digits or X-rays
    seed: int = 0

    @classmethod
    def from_params(cls, augment: Augment, seed: int) -> Augmentation:
        """From the `augment` section of params.yaml and the global seed."""
        return cls(**augment.values(), seed=seed)

    def run_params(self) -> dict:
        """As MLflow params, `augment_`-prefixed: the same names in every stage that trains on the views."""
        return {f"augment_{key}": value for key, value in dataclasses.asdict(self).items()}

    def fresh(self, epochs: int) -> Augmentation:
        """The same transforms with a new view every epoch (view e in epoch e), for training that needs no
        stored outputs per view: the teacher's own, or a student with the teacher in the loop."""
        return dataclasses.replace(self, views=max(self.views, epochs))

    def view(self, images: np.ndarray, indices: np.ndarray, view: int) -> np.ndarray:
        """View `view` of images[k], the training image number indices[k]: (n, H, W, 1) uint8 -> same.
        Each image's transform is drawn from (seed, view, index), so a view does not depend on which
        batch the image is in, or on which stage asks for it."""
        if not 0 <= view < self.views:
            raise ValueError(f"view {view} out of range: augment.views is {self.views}")
        if view == 0:
            return np.asarray(images)
        out = np.empty(images.shape, dtype=np.uint8)
        for k, (image, index) in enumerate(zip(images, indices)):
            matrix, offset, mirror = self._transform(image.shape[:2], int(index), view)
            # edge pixels extend outwards: right for dark and for light backgrounds alike
            moved = ndimage.affine_transform(image[..., 0].astype(np.float32), matrix, offset, order=1,
                                             mode="nearest")
            out[k, ..., 0] = np.clip(np.rint(moved[:, ::-1] if mirror else moved), 0, 255)
        return out

    def _transform(self, shape: tuple[int, int], index: int, view: int):
        """Rotation, zoom and shift about the image centre, as affine_transform's output -> input map, and
        whether to mirror the result (drawn last, so the other draws do not depend on `flip`)."""
        rng = np.random.default_rng([self.seed, view, index])
        angle = np.deg2rad(rng.uniform(-self.max_rotation, self.max_rotation))
        zoom = rng.uniform(1.0 - self.max_scale, 1.0 + self.max_scale)
        shift = rng.uniform(-self.max_shift, self.max_shift, size=2) * np.array(shape)
        mirror = self.flip and rng.random() < 0.5
        centre = (np.array(shape) - 1) / 2.0
        matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
        return matrix, centre - matrix @ (centre + shift), mirror


VIEWS_FILE, VIEWS_META = "views.npy", "views.json"


class StoredViews:
    """Views 0..views-1 of every training image as the views stage computed them once (data/views), read
    like an Augmentation (the same `views` and `view()`), so teacher, students and control share the same
    pixels and no epoch pays the warping again."""

    def __init__(self, folder: Path | str, augmentation: Augmentation):
        folder = Path(folder)
        check_made_for(folder / VIEWS_META, augmentation, what="views", stage="views")
        self.array = np.load(folder / VIEWS_FILE, mmap_mode="r", allow_pickle=False)
        self.views, self.augmentation = int(self.array.shape[0]), augmentation

    def view(self, images: np.ndarray, indices: np.ndarray, view: int) -> np.ndarray:
        if not 0 <= view < self.views:
            raise ValueError(f"view {view} out of range: augment.views is {self.views}")
        return np.asarray(self.array[view][np.asarray(indices)])


def write_views(folder: Path, images: np.ndarray, augmentation: Augmentation, chunk: int = 2048) -> None:
    """Every view of every image into folder/views.npy ((views, N, H, W, 1) uint8, written a chunk at a time
    through a memmap, so memory holds one chunk) and the parameters they were made with into views.json."""
    out = np.lib.format.open_memmap(folder / VIEWS_FILE, mode="w+", dtype=np.uint8,
                                    shape=(augmentation.views, *images.shape))
    for view in progress.steps(range(augmentation.views), "views", unit="view"):
        for start in range(0, len(images), chunk):
            indices = np.arange(start, min(start + chunk, len(images)))
            out[view, indices] = augmentation.view(np.asarray(images[indices]), indices, view)
    out.flush()
    del out
    record_made_for(folder / VIEWS_META, augmentation)


def record_made_for(path: Path, augmentation: Augmentation) -> None:
    """Which views a stored output was made for (views, soft targets), so a reader can refuse a mismatch."""
    path.write_text(json.dumps(dataclasses.asdict(augmentation), indent=2) + "\n")


def check_made_for(path: Path, augmentation: Augmentation, *, what: str, stage: str) -> None:
    """Refuse stored `what` made for other views than params.yaml's augment section and seed."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found; run the {stage} stage first (dvc repro)")
    made_for, wanted = json.loads(path.read_text()), dataclasses.asdict(augmentation)
    if made_for != wanted:
        raise ValueError(f"{path}: {what} were made for other views than params.yaml's augment section and seed "
                         f"({made_for} vs {wanted}); rerun {stage} (dvc repro)")


# The teacher may be a few points less sure of a shifted or rotated image than of a new plain one; beyond this
# the views change what the images show (Fashion-MNIST with digit-sized rotations: 84.8% on the views
# against 89.0% on validation, and distillation lost 1.5 points to its control).
VIEW_ACCURACY_MARGIN = 0.02


def views_warning(teacher_views: dict) -> str | None:
    """A warning when the teacher is clearly worse on its augmented training views than on validation images
    it has never seen (soft_targets metrics: augmented_view_accuracy against val_accuracy)."""
    views, val = teacher_views.get("augmented_view_accuracy"), teacher_views.get("val_accuracy")
    if views is None or val is None or views >= val - VIEW_ACCURACY_MARGIN:
        return None
    return (f"Warning: the teacher labels {100 * views:.1f}% of its augmented training views correctly against "
            f"{100 * val:.1f}% of the validation images: the views (params.yaml, augment) change what the images "
            "show, and the students learn the teacher's mistakes on them. Milder views, or a teacher trained on them "
            "(train_teacher.augment), help; README, 'Choosing the views'.")
