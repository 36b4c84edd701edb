"""The leakage guard: near-duplicate images within and across the training pool and the test images.

Public medical and industrial sets leak. The published Brain Tumor MRI set has 443 of its 1,311 test images
near-duplicating training images; a model tested on them reports memorised copies as accuracy, and a
distilled student and its control both look better than they are. Patient grouping (group_pattern) needs
file names that say who the patient is; this finds the same image saved twice, re-encoded, resized, blurred,
re-windowed (brightness, contrast), slightly cropped, shifted or straightened.

Every comparison is between standardised images (mean subtracted, divided by the spread), so a global
brightness or contrast change costs nothing. Each image gets a 64x64 box-downscaled copy. Candidates are each
image's NEIGHBOURS nearest images by the correlation of standardised 8x8 thumbnails (a blocked matrix
product: exact, quadratic in arithmetic, a second for 6,000 images; a crop's source is among them 97% of the
time on brain MRI). A candidate pair is a near-duplicate when either
- its 64x64 copies correlate at MIN_CORRELATION or more as they are (copies, re-encodings, noise,
  brightness and contrast), or
- after aligning one onto the other (a similarity warp: scale, rotation, shift, fitted by inverse-compositional
  Gauss-Newton at 16 then 32 px, Baker & Matthews 2004) their slightly blurred 64x64 copies correlate at
  MIN_ALIGNED_CORRELATION or more inside a margin, with the warp within MAX_SCALE, MAX_ROTATION, MAX_SHIFT.
  Two slices of one patient a few millimetres apart reach 0.99 after alignment; a copy cropped by 3% or
  rotated by 2 degrees reaches 0.997 (tests/test_duplicates.py plants each kind in real scans).
The images are the preprocessed ones (gray, resized to image_size), so a resized copy meets its original at
one size. Mostly black images such as digits: different handwritten 1s of MNIST correlate at up to 0.98.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from tinygray.data.prepared import DataError
from tinygray.pipeline.choices import DUPLICATE_POLICIES

COMPARE_SIDE = 64           # side of the copies compared pixel by pixel
DESCRIPTOR_SIDE = 8         # side of the standardised thumbnails that pick the candidates
NEIGHBOURS = 5              # candidates per image: its nearest images by thumbnail correlation
MIN_CORRELATION = 0.99      # 64x64 copies as they are: different handwritten 1s of MNIST (mostly black) reach
                            # 0.98; copies, re-encodings and re-windowed copies exceed 0.99
MIN_ALIGNED_CORRELATION = 0.996  # after alignment, blurred by ALIGNED_BLUR: neighbouring slices of one
                            # brain MRI reach 0.993-0.995; 3% crops and 2-degree rotations 0.994-0.999
MIN_COARSE_CORRELATION = (0.95, 0.98)  # after alignment at 16 and at 32 px: below these a pair is not
                            # refined further (no crop or rotation of the tests fell under them)
ITERATIONS = (3, 2)          # Gauss-Newton steps at 16 and at 32 px
ALIGNED_BLUR = 1.0          # pixels of the 64x64 copy: interpolation after a warp smooths the image as much
MARGIN = 0.06               # fraction of the side left out at each border: what a crop or rotation fills in
MAX_SCALE, MAX_ROTATION, MAX_SHIFT = 0.08, np.radians(5), 0.1   # warps further than this are other pictures
CHUNK = 512                 # images read from a memory map at a time
PAIR_CHUNK = 4096           # candidate pairs aligned at a time (memory)


def signatures(images: np.ndarray) -> np.ndarray:
    """The (N, 64, 64) uint8 copies of uint8 images (N, H, W, 1), read in chunks so a memory-mapped set is
    never loaded whole."""
    count = len(images)
    copies = np.empty((count, COMPARE_SIDE, COMPARE_SIDE), np.uint8)
    for start in range(0, count, CHUNK):
        for offset, image in enumerate(np.asarray(images[start:start + CHUNK])[..., 0]):
            copies[start + offset] = np.asarray(Image.fromarray(image).resize((COMPARE_SIDE, COMPARE_SIDE),
                                                                               Image.Resampling.BOX))
    return copies


def near_duplicate_pairs(copies: np.ndarray, across: int | None = None) -> list[tuple[int, int, float]]:
    """(i, j, mean difference in grey levels) with i < j for every near-duplicate pair, sorted. With `across`,
    only pairs i < across <= j (the images before it against those after: unlabelled images against the
    held-out ones), each image's candidates drawn from the other side."""
    candidates = neighbour_pairs(copies, across=across)
    first, second = candidates[:, 0], candidates[:, 1]
    found = np.zeros(len(candidates), bool)
    flat = _standardized(copies.reshape(len(copies), -1).astype(np.float32))
    scales = _Scales(copies)
    for start in range(0, len(candidates), PAIR_CHUNK):
        i, j = first[start:start + PAIR_CHUNK], second[start:start + PAIR_CHUNK]
        direct = np.einsum("np,np->n", flat[i], flat[j]) >= MIN_CORRELATION
        rest = np.flatnonzero(~direct)
        direct[rest] = scales.aligned_correlation(i[rest], j[rest]) >= MIN_ALIGNED_CORRELATION
        found[start:start + PAIR_CHUNK] = direct
    i, j = first[found], second[found]
    difference = np.abs(copies[i].astype(np.float32) - copies[j]).mean(axis=(1, 2))
    return [(int(a), int(b), round(float(d), 2)) for a, b, d in zip(i, j, difference)]


def neighbour_pairs(copies: np.ndarray, neighbours: int = NEIGHBOURS, across: int | None = None) -> np.ndarray:
    """(M, 2) sorted unique pairs i < j: each image with its `neighbours` nearest by the correlation of
    standardised 8x8 thumbnails (with `across`: nearest on the other side of it), a block of rows at a time
    so that a large set costs time, not memory."""
    count = len(copies)
    thumbnails = _standardized(_shrink(copies, DESCRIPTOR_SIDE).reshape(count, -1))
    everything = np.arange(count)
    sides = [(everything, everything)] if across is None else [(everything[:across], everything[across:]),
                                                               (everything[across:], everything[:across])]
    found = [np.zeros((0, 2), np.int64)]
    for queries, pool in sides:
        k = min(neighbours, len(pool) - (across is None))
        if k <= 0:
            continue
        for start in range(0, len(queries), 1024):
            rows = queries[start:start + 1024]
            similarity = thumbnails[rows] @ thumbnails[pool].T
            if across is None:
                similarity[np.arange(len(rows)), rows] = -np.inf
            nearest = pool[np.argpartition(-similarity, k - 1, axis=1)[:, :k]]
            found.append(np.sort(np.stack([np.repeat(rows, k), nearest.ravel()], axis=1), axis=1))
    return np.unique(np.concatenate(found), axis=0)


class _Scales:
    """Each image standardised and blurred once at the three sides the alignment uses."""
    SIDES = ((16, 0.5), (32, 0.7), (COMPARE_SIDE, ALIGNED_BLUR))  # (side, Gaussian blur in its pixels)

    def __init__(self, copies: np.ndarray):
        self.images = [ndimage.gaussian_filter(_shrink(copies, side), (0, blur, blur)) for side, blur in self.SIDES]

    def aligned_correlation(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Correlation of images i and j (64x64, blurred) once j is warped onto i; -1 where the pair fell
        under a coarse threshold or the warp is implausibly large. Coarse to fine: each side starts from the
        last side's warp (coordinates in [-1, 1], so a warp means the same at every side)."""
        score = np.full(len(i), -1.0, np.float32)
        warp = np.tile(np.eye(3, dtype=np.float32), (len(i), 1, 1))
        alive = np.arange(len(i))
        for (images, iterations, threshold) in zip(self.images[:2], ITERATIONS, MIN_COARSE_CORRELATION):
            if not len(alive):
                return score
            warp[alive] = _align(images[i[alive]], images[j[alive]], warp[alive], iterations)
            alive = alive[_correlation_after(images[i[alive]], images[j[alive]], warp[alive]) >= threshold]
        alive = alive[_plausible(warp[alive])]
        if not len(alive):
            return score
        fine = self.images[2]
        score[alive] = _correlation_after(fine[i[alive]], fine[j[alive]], warp[alive])
        return score


def _shrink(copies: np.ndarray, side: int) -> np.ndarray:
    """Box-downscaled float32 copies (N, side, side)."""
    f = copies.shape[1] // side
    return copies.reshape(len(copies), side, f, side, f).mean(axis=(2, 4), dtype=np.float32)


def _standardized(flat: np.ndarray) -> np.ndarray:
    """Rows minus their mean, divided by their norm: the dot product of two is their correlation. A flat row
    (no spread) stays zeros."""
    flat = flat - flat.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(flat, axis=-1, keepdims=True)
    return np.divide(flat, norm, out=np.zeros_like(flat), where=norm > 0)


def _grid(side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel centres in [-1, 1] (u across, v down), flattened, and the mask inside the MARGIN."""
    axis = np.linspace(-1, 1, side, dtype=np.float32)
    v, u = np.meshgrid(axis, axis, indexing="ij")
    inside = (np.abs(u) <= 1 - 2 * MARGIN) & (np.abs(v) <= 1 - 2 * MARGIN)
    return u.ravel(), v.ravel(), inside.ravel()


def _warped(images: np.ndarray, warp: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, P) of images (N, S, S) at the warped points (u, v): warp (N, 3, 3) maps the
    first image's coordinates into the second's. Points outside take the nearest border pixel."""
    count, side, _ = images.shape
    x = (warp[:, 0, :1] * u + warp[:, 0, 1:2] * v + warp[:, 0, 2:3] + 1) * ((side - 1) / 2)
    y = (warp[:, 1, :1] * u + warp[:, 1, 1:2] * v + warp[:, 1, 2:3] + 1) * ((side - 1) / 2)
    x, y = np.clip(x, 0, side - 1.001), np.clip(y, 0, side - 1.001)
    x0, y0 = x.astype(np.int32), y.astype(np.int32)
    fx, fy = x - x0, y - y0
    flat = images.reshape(count, -1)
    index = y0 * side + x0

    def at(offset: int) -> np.ndarray:
        return np.take_along_axis(flat, index + offset, axis=1)

    return (at(0) * (1 - fx) + at(1) * fx) * (1 - fy) + (at(side) * (1 - fx) + at(side + 1) * fx) * fy


def _align(first: np.ndarray, second: np.ndarray, warp: np.ndarray, iterations: int) -> np.ndarray:
    """The similarity warps that best map each first image onto its second, refined from `warp` by
    inverse-compositional Gauss-Newton on standardised images inside the margin: the Jacobian and its
    normal matrix come from the first image once, so an iteration costs one warp of the second."""
    count, side, _ = first.shape
    u, v, inside = _grid(side)
    flat = first.reshape(count, -1)
    mean = flat[:, inside].mean(axis=1, keepdims=True)
    norm = np.maximum(np.linalg.norm(flat[:, inside] - mean, axis=1, keepdims=True), 1e-6)
    whole = (flat - mean) / norm          # standardised by the inside pixels, gradients taken on the whole
    template = whole[:, inside]
    gy, gx = np.gradient(whole.reshape(count, side, side), axis=(1, 2))
    gx, gy = gx.reshape(count, -1)[:, inside] * ((side - 1) / 2), gy.reshape(count, -1)[:, inside] * ((side - 1) / 2)
    ui, vi = u[inside], v[inside]
    jacobian = np.stack([gx * ui + gy * vi, gy * ui - gx * vi, gx, gy], axis=2)  # d/d(scale, rotation, shift x, y)
    hessian = jacobian.transpose(0, 2, 1) @ jacobian + 1e-6 * np.eye(4, dtype=np.float32)
    for _ in range(iterations):
        error = _standardized(_warped(second, warp, ui, vi)) - template
        step = np.linalg.solve(hessian, jacobian.transpose(0, 2, 1) @ error[..., None])[..., 0]
        update = np.zeros_like(warp)
        update[:, 0, 0] = update[:, 1, 1] = 1 + step[:, 0]
        update[:, 0, 1], update[:, 1, 0] = -step[:, 1], step[:, 1]
        update[:, 0, 2], update[:, 1, 2], update[:, 2, 2] = step[:, 2], step[:, 3], 1
        warp = warp @ np.linalg.inv(update)
    return warp


def _correlation_after(first: np.ndarray, second: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Correlation inside the margin of each first image and its second warped onto it."""
    count, side, _ = first.shape
    u, v, inside = _grid(side)
    return np.einsum("np,np->n", _standardized(first.reshape(count, -1)[:, inside]),
                     _standardized(_warped(second, warp, u[inside], v[inside])))


def _plausible(warp: np.ndarray) -> np.ndarray:
    """Warps within MAX_SCALE, MAX_ROTATION and MAX_SHIFT: a larger one maps one picture onto another."""
    scale = np.sqrt(np.abs(np.linalg.det(warp[:, :2, :2]))) - 1
    angle = np.arctan2(warp[:, 1, 0], warp[:, 0, 0])
    return (np.abs(scale) <= MAX_SCALE) & (np.abs(angle) <= MAX_ROTATION) & (np.abs(warp[:, :2, 2]).max(axis=1) <= MAX_SHIFT)


def _groups(count: int, pairs: list[tuple[int, int, float]]) -> np.ndarray:
    """Connected components of the pairs: the smallest member's index for each image (union-find)."""
    parent = np.arange(count)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)
    return np.array([root(i) for i in range(count)])


class DuplicatesError(DataError):
    """preprocess.duplicates: fail, and near-duplicates were found."""


@dataclass
class Duplicates:
    """Near-duplicates among the pool (the images the splits are drawn from) and the held-out test images,
    numbered pool first, then test. `keep_pool` and `keep_test` are what the policy keeps: everything for
    `report`; for `drop`, one image of each group and no test image that near-duplicates a pool image."""
    policy: str
    pool_size: int
    pairs: list[tuple[int, int, float]]
    labels: np.ndarray
    groups: np.ndarray
    names: list[str]
    keep_pool: np.ndarray
    keep_test: np.ndarray
    split_of: np.ndarray  # each image's split ("" until record_splits, and for a dropped image)

    @classmethod
    def find(cls, policy: str, pool: np.ndarray, pool_labels: np.ndarray, test: np.ndarray | None = None,
             test_labels: np.ndarray | None = None, names: list[str] | None = None) -> "Duplicates":
        """Every near-duplicate pair among pool + test; `fail` raises DuplicatesError naming the first pairs."""
        if policy not in DUPLICATE_POLICIES:
            raise ValueError(f"parameter 'preprocess.duplicates' must be one of {DUPLICATE_POLICIES}, got {policy!r}")
        parts = [(pool, pool_labels)] + ([(test, test_labels)] if test is not None else [])
        copies = np.concatenate([signatures(images) for images, _ in parts])
        labels = np.concatenate([np.asarray(y) for _, y in parts]).astype(np.int64)
        pairs = near_duplicate_pairs(copies)
        groups = _groups(len(labels), pairs)
        names = names or [str(i) for i in range(len(labels))]
        pool_size = len(pool_labels)
        if policy == "drop":  # a group's root is its smallest index: a group holding a pool image roots in the pool
            first = groups == np.arange(len(groups))
            keep_pool, keep_test = np.flatnonzero(first[:pool_size]), np.flatnonzero(first[pool_size:])
        else:
            keep_pool, keep_test = np.arange(pool_size), np.arange(len(labels) - pool_size)
        found = cls(policy, pool_size, pairs, labels, groups, names, keep_pool, keep_test,
                    np.full(len(labels), "", dtype=object))
        if policy == "fail" and pairs:
            shown = "; ".join(f"{names[i]} ~ {names[j]} ({d} grey levels)" for i, j, d in pairs[:3])
            raise DuplicatesError(f"preprocess.duplicates is 'fail' and {len(pairs)} near-duplicate pair(s) were found, "
                                  f"first: {shown}. Remove them, or set 'preprocess.duplicates: drop' (keeps one of "
                                  "each, drops test and validation copies of training images) or 'report'")
        return found

    def record_splits(self, indices: dict[str, np.ndarray]) -> None:
        """Which split each image went to (indices in pool + test numbering)."""
        for split, idx in indices.items():
            self.split_of[np.asarray(idx, dtype=np.int64)] = split

    def label_conflicts(self) -> list[tuple[int, int, float]]:
        """Near-duplicate pairs with different labels: label noise, listed under every policy."""
        return [pair for pair in self.pairs if self.labels[pair[0]] != self.labels[pair[1]]]

    def leaking(self) -> dict[str, int]:
        """Images of val and test that near-duplicate a training image (0 after `drop`)."""
        train_groups = set(self.groups[self.split_of == "train"].tolist())
        return {split: int(sum(g in train_groups for g in self.groups[self.split_of == split]))
                for split in ("val", "test")}

    def summary(self, class_names: list[str]) -> dict:
        """The counts for metrics/preprocess.json."""
        dropped = {}
        for part, keep, offset, size in (("pool", self.keep_pool, 0, self.pool_size),
                                         ("test_dir", self.keep_test, self.pool_size, len(self.labels) - self.pool_size)):
            gone = np.setdiff1d(np.arange(size), keep) + offset
            dropped[part] = {class_names[c]: int(n) for c, n in zip(*np.unique(self.labels[gone], return_counts=True))}
        sizes = np.bincount(self.groups, minlength=len(self.groups))
        return {"policy": self.policy, "pairs": len(self.pairs), "groups": int(np.sum(sizes > 1)),
                "images_in_groups": int(np.sum(sizes[self.groups] > 1)), "label_conflicts": len(self.label_conflicts()),
                "dropped": dropped, "leaking": self.leaking()}

    def rows(self, class_names: list[str]) -> list[dict]:
        """One row per pair for the pairs file: both images, their splits and labels, the difference."""
        return [{"first": self.names[i], "second": self.names[j], "first_split": self.split_of[i] or "dropped",
                 "second_split": self.split_of[j] or "dropped", "first_label": class_names[self.labels[i]],
                 "second_label": class_names[self.labels[j]], "mean_difference": d} for i, j, d in self.pairs]


def leakage_warning(summary: dict) -> str | None:
    """The benchmark report's warning when the test split still holds near-duplicates of training images
    (preprocess.duplicates: report): its accuracy then counts memorised copies."""
    leaked = (summary.get("leaking") or {}).get("test", 0)
    if not leaked:
        return None
    return (f"Warning: {leaked} test image(s) near-duplicate training images (preprocess.duplicates: "
            f"{summary.get('policy')}; pairs in metrics/preprocess_duplicates.csv): every accuracy here counts them, "
            "and a model that memorised them looks better than it is. Set 'preprocess.duplicates: drop'.")
