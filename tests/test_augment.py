"""Augmented views: the same view for the same (seed, view, image) wherever it is asked for, and batches
that walk through the views epoch by epoch with the right targets."""
import numpy as np
import pytest

from tinygray.train import loop
from tinygray.data.augment import Augmentation

AUGMENTATION = Augmentation(views=3, max_rotation=12, max_shift=0.09, max_scale=0.1, seed=5)


def test_view_zero_is_the_image_and_other_views_move_it(digits):
    images = digits[0][:20]
    indices = np.arange(20)
    np.testing.assert_array_equal(AUGMENTATION.view(images, indices, 0), images)
    moved = AUGMENTATION.view(images, indices, 1)
    assert moved.shape == images.shape and moved.dtype == np.uint8
    assert not np.array_equal(moved, images) and not np.array_equal(moved, AUGMENTATION.view(images, indices, 2))


def test_a_view_depends_on_seed_view_and_index_not_on_the_batch(digits):
    images = digits[0][:10]
    whole = AUGMENTATION.view(images, np.arange(10), 1)
    np.testing.assert_array_equal(AUGMENTATION.view(images[[7, 2]], np.array([7, 2]), 1), whole[[7, 2]])
    other_seed = Augmentation(**{**vars(AUGMENTATION), "seed": 6}).view(images, np.arange(10), 1)
    assert not np.array_equal(other_seed, whole)


def test_no_transform_leaves_every_view_unchanged(digits):
    images = digits[0][:5]
    still = Augmentation(views=2)
    np.testing.assert_array_equal(still.view(images, np.arange(5), 1), images)


def test_flip_mirrors_about_half_the_views_and_leaves_the_other_draws_alone(digits):
    images = digits[0][:200]
    indices = np.arange(200)
    flipping = Augmentation(**{**vars(AUGMENTATION), "flip": True})
    plain, flipped = AUGMENTATION.view(images, indices, 1), flipping.view(images, indices, 1)
    mirrored = [k for k in range(200) if not np.array_equal(flipped[k], plain[k])]
    assert 70 < len(mirrored) < 130
    for k in range(200):  # each view is the unflipped one, or exactly its mirror image
        assert np.array_equal(flipped[k], plain[k]) or np.array_equal(flipped[k], plain[k][:, ::-1])
    np.testing.assert_array_equal(flipping.view(images, indices, 0), images)  # view 0 stays the image


def test_view_out_of_range_is_refused(digits):
    with pytest.raises(ValueError, match="view 3 out of range: augment.views is 3"):
        AUGMENTATION.view(digits[0][:2], np.arange(2), 3)


def test_batches_cover_every_image_once_per_epoch_reproducibly():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    labels = np.arange(10)
    dataset = loop.Batches(images, labels, 4, seed=1)
    assert len(dataset) == 3
    first, second = _epoch(dataset), _epoch(dataset)
    for batches in (first, second):
        assert sorted(np.concatenate([y for _, y in batches])) == list(range(10))
        for x, y in batches:
            np.testing.assert_array_equal(x[:, 0, 0, 0], y)  # targets stay with their images
    assert [b[1].tolist() for b in first] != [b[1].tolist() for b in second]  # reshuffled per epoch
    again = loop.Batches(images, labels, 4, seed=1)
    assert [b[1].tolist() for b in _epoch(again)] == [b[1].tolist() for b in first]
    assert loop.Batches(images, labels, 4, shuffle=False)[2][1].tolist() == [8, 9]
    with pytest.raises(ValueError, match="10 images but 9 targets"):
        loop.Batches(images, labels[:9], 4)


def test_batches_cycle_through_views_with_their_own_targets(digits):
    images = digits[0][:12]
    per_view = np.stack([np.arange(12) * 10 + view for view in range(3)])  # target encodes (image, view)
    dataset = loop.Batches(images, per_view, 12, shuffle=False, augmentation=AUGMENTATION, targets_per_view=True)
    for epoch in range(4):
        view = epoch % 3
        x, y = _epoch(dataset)[0]
        np.testing.assert_array_equal(y, per_view[view])
        np.testing.assert_array_equal(x, AUGMENTATION.view(images, np.arange(12), view))
    with pytest.raises(ValueError, match="3 views but targets for 2"):
        loop.Batches(images, per_view[:2], 4, augmentation=AUGMENTATION, targets_per_view=True)


def test_fit_trains_on_a_new_view_every_epoch(digits_split):
    """Keras calls on_epoch_end, so fit really walks the views (an augmentation that stalled on view 0
    would train on the plain images only)."""
    import keras

    from tinygray.models.cnn import build_cnn

    (x, y), val = digits_split["train"], digits_split["val"]
    seen = []

    class Spy(Augmentation):
        def view(self, images, indices, view):
            seen.append(view)
            return super().view(images, indices, view)

    model = build_cnn(x.shape[1:], 10, [4])
    loop.fit(model, (x, y), val, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
             metric=loop.accuracy_metric(), epochs=4, batch_size=len(x), learning_rate=0.01, seed=0,
             augmentation=Spy(**{**vars(AUGMENTATION)}))
    # Keras resets the dataset once before the first epoch, so 4 epochs walk views 1, 2, 0, 1 (view 0, the
    # plain images, asks the augmentation for nothing)
    assert seen == [1, 2, 1]


def _epoch(dataset):
    batches = [dataset[i] for i in range(len(dataset))]
    dataset.on_epoch_end()
    return batches


def test_run_params_name_every_field_with_the_augment_prefix():
    augmentation = Augmentation(views=3, max_rotation=5.0, max_shift=0.1, max_scale=0.2, seed=7)
    assert augmentation.run_params() == {"augment_views": 3, "augment_max_rotation": 5.0, "augment_max_shift": 0.1,
                                         "augment_max_scale": 0.2, "augment_flip": False, "augment_seed": 7}


def test_stored_views_are_the_views_and_are_refused_for_other_parameters(tmp_path, digits):
    from tinygray.data.augment import StoredViews, write_views

    images = digits[0][:50]
    write_views(tmp_path, images, AUGMENTATION, chunk=16)
    stored = StoredViews(tmp_path, AUGMENTATION)
    assert stored.views == AUGMENTATION.views
    for view in range(AUGMENTATION.views):
        np.testing.assert_array_equal(stored.view(images[[3, 9]], np.array([3, 9]), view),
                                      AUGMENTATION.view(images[[3, 9]], np.array([3, 9]), view))
    with pytest.raises(ValueError, match=r"views.json: views were made for other views .* rerun views"):
        StoredViews(tmp_path, Augmentation(**{**vars(AUGMENTATION), "max_rotation": 5}))
    with pytest.raises(FileNotFoundError, match="run the views stage"):
        StoredViews(tmp_path / "missing", AUGMENTATION)
    # batches read the stored pixels exactly as they would compute them
    per_view = loop.Batches(images, np.arange(50), 50, shuffle=False, augmentation=stored)
    computed = loop.Batches(images, np.arange(50), 50, shuffle=False, augmentation=AUGMENTATION)
    for _ in range(AUGMENTATION.views):
        np.testing.assert_array_equal(per_view[0][0], computed[0][0])
        per_view.on_epoch_end(), computed.on_epoch_end()
