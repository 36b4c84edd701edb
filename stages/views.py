"""Stage 2b: every augmented view of every training image, computed once (data/views) and shared by the
teacher's soft targets, the distilled students and their control, so each sees exactly the same pixels and
no training epoch pays the warping again."""
from tinygray import prepared
from tinygray.pipeline.atomic import atomic_output, require_free_space
from tinygray.augment import Augmentation, write_views
from tinygray.pipeline.params import load_params
from tinygray.pipeline import layout
from tinygray.pipeline.tracking import stage_run

PREPARED, OUT = layout.PREPARED, layout.VIEWS


def main() -> None:
    params = load_params()
    augmentation = Augmentation.from_params(params.augment, params.seed)
    with stage_run("views", augmentation.run_params()) as run:
        train_images, _ = prepared.read_split(PREPARED, "train")
        require_free_space(OUT, augmentation.views * train_images.nbytes,
                           f"{augmentation.views} views of {len(train_images)} training images")
        with atomic_output(OUT) as staging:
            staging.mkdir()
            write_views(staging, train_images, augmentation)
        run.finish({"num_images": {"train": int(len(train_images))}, "views": augmentation.views,
                    "size_bytes": int(augmentation.views * train_images.nbytes)})


if __name__ == "__main__":
    main()
