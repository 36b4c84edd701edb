"""The leakage guard: near-duplicate images within and across the training pool and the test images.

Public medical and industrial sets leak. The published Brain Tumor MRI set has 443 of its 1,311 test images
near-duplicating training images; a model tested on them reports memorised copies as accuracy, and a
distilled student and its control both look better than they are. Patient grouping (group_pattern) needs
file names that say who the patient is; this finds the same image saved twice, re-encoded or resized.

Each image gets a 16x16 average hash (bit set where a cell is brighter than the image's mean) of its
64x64 box-downscaled copy. Candidate pairs are images that share one of the hash's four 64-bit bands, so a
pair whose hashes differ in up to three bits is still found (pigeonhole) while the work stays near-linear:
only images in one bucket are compared, and only those whose whole hashes differ in at most
MAX_HASH_DISTANCE bits are compared pixel by pixel. A candidate is a near-duplicate when the two 64x64
copies differ by less than MAX_MEAN_DIFFERENCE grey levels on average (JPEG re-encoding: under 1; two
different scans: tens) and correlate at MIN_CORRELATION or more (mostly black images such as digits can be
under 5 grey levels apart and still be different pictures). The images are the preprocessed ones (gray,
resized to image_size), so a resized copy of an image meets it at one size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from tinygray.data.prepared import DataError
from tinygray.pipeline.choices import DUPLICATE_POLICIES

COMPARE_SIDE = 64           # side of the copies compared pixel by pixel
HASH_SIDE = 16              # side of the average hash: 256 bits
BANDS = 4                   # candidate buckets per image: one per 64-bit band of the hash
MAX_MEAN_DIFFERENCE = 5.0   # grey levels (0..255), mean absolute difference of the 64x64 copies
MAX_HASH_DISTANCE = 16      # bits of 256: candidates further apart are not compared pixel by pixel
MIN_CORRELATION = 0.99      # Pearson correlation of the 64x64 copies: different handwritten 1s of MNIST (mostly
                            # black, so under 5 grey levels apart) reach 0.98; copies and re-encodings exceed 0.99
CHUNK = 512                 # images read from a memory map at a time


def signatures(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hashes (N, BANDS) uint64, copies (N, 64, 64) uint8) of uint8 images (N, H, W, 1), read in chunks so a
    memory-mapped set is never loaded whole. Band k holds every BANDS-th cell from cell k, so each band
    samples the whole image: a band made of the top rows alone would be blank for most centred objects and
    put them all in one bucket."""
    count = len(images)
    copies = np.empty((count, COMPARE_SIDE, COMPARE_SIDE), np.uint8)
    for start in range(0, count, CHUNK):
        for offset, image in enumerate(np.asarray(images[start:start + CHUNK])[..., 0]):
            copies[start + offset] = np.asarray(Image.fromarray(image).resize((COMPARE_SIDE, COMPARE_SIDE),
                                                                               Image.Resampling.BOX))
    cell = COMPARE_SIDE // HASH_SIDE
    cells = copies.reshape(count, HASH_SIDE, cell, HASH_SIDE, cell).mean(axis=(2, 4)).reshape(count, -1)
    bits = cells > cells.mean(axis=1, keepdims=True)
    interleaved = np.concatenate([bits[:, band::BANDS] for band in range(BANDS)], axis=1)
    hashes = np.packbits(interleaved, axis=1).view(">u8").astype(np.uint64)  # (N, BANDS)
    return hashes, copies


def near_duplicate_pairs(hashes: np.ndarray, copies: np.ndarray) -> list[tuple[int, int, float]]:
    """(i, j, mean difference) with i < j for every near-duplicate pair, sorted. Inside a bucket, pairs
    whose whole hashes differ in more than MAX_HASH_DISTANCE bits are not compared pixel by pixel."""
    candidates: set[tuple[int, int]] = set()
    for band in range(hashes.shape[1]):
        order = np.argsort(hashes[:, band], kind="stable")
        values = hashes[order, band]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        for start, end in zip(starts, np.r_[starts[1:], len(values)]):
            if end - start > 1:
                candidates.update(_close_pairs(np.sort(order[start:end]), hashes))
    pairs = []
    for i, j in sorted(candidates):
        a, b = copies[i].astype(np.float64).ravel(), copies[j].astype(np.float64).ravel()
        difference = float(np.abs(a - b).mean())
        if difference < MAX_MEAN_DIFFERENCE and _correlation(a, b) >= MIN_CORRELATION:
            pairs.append((i, j, round(difference, 2)))
    return pairs


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; two flat images (no spread) count as the same picture."""
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm else 1.0


def _close_pairs(members: np.ndarray, hashes: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of `members` (sorted indices) whose hashes differ in at most MAX_HASH_DISTANCE bits, computed
    a block of rows at a time so that a large bucket costs time, not memory."""
    found = []
    for start in range(0, len(members), 256):
        rows = members[start:start + 256]
        distance = np.bitwise_count(hashes[rows][:, None, :] ^ hashes[members][None, :, :]).sum(axis=2)
        for r, c in zip(*np.nonzero(distance <= MAX_HASH_DISTANCE)):
            if members[c] > rows[r]:
                found.append((int(rows[r]), int(members[c])))
    return found


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
        hashes, copies = zip(*(signatures(images) for images, _ in parts))
        labels = np.concatenate([np.asarray(y) for _, y in parts]).astype(np.int64)
        pairs = near_duplicate_pairs(np.concatenate(hashes), np.concatenate(copies))
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
