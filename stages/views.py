"""Stage 2b: every augmented view of every training image (and unlabelled image), computed once (data/views) and shared by the
teacher's soft targets, the distilled students and their control, so each sees exactly the same pixels and
no training epoch pays the warping again."""
from tinygray.data import prepared
from tinygray.pipeline.atomic import atomic_output, require_free_space
from tinygray.data.augment import Augmentation, write_views
from tinygray.pipeline.params import load_params
from tinygray.pipeline import layout
from tinygray.pipeline.tracking import stage_run

PREPARED, UNLABELED, OUT = layout.PREPARED, layout.UNLABELED, layout.VIEWS


def main() -> None:
    params = load_params()
    augmentation = Augmentation.from_params(params.augment, params.seed)
    with stage_run("views", augmentation.run_params()) as run:
        images = prepared.distillation_images(PREPARED, UNLABELED)  # the training images, then any unlabelled ones
        num_train = len(prepared.read_split(PREPARED, "train")[1])
        require_free_space(OUT, augmentation.views * images.nbytes,
                           f"{augmentation.views} views of {len(images)} images")
        with atomic_output(OUT) as staging:
            staging.mkdir()
            write_views(staging, images, augmentation)
        unlabeled = {"unlabeled": int(len(images) - num_train)} if len(images) > num_train else {}
        run.finish({"num_images": {"train": num_train, **unlabeled}, "views": augmentation.views,
                    "size_bytes": int(augmentation.views * images.nbytes)})


if __name__ == "__main__":
    main()
