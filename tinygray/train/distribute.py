"""train_teacher.distribute: train the teacher through TensorFlow's own engines (tf.distribute), not ours.

- "none": one device, the default strategy.
- "mirrored": `MirroredStrategy`, one replica per local GPU (the CPU when there is none), gradients summed
  across them every step.
- "multi_worker": `MultiWorkerMirroredStrategy`, one process per machine, configured the way TensorFlow is
  everywhere: each process reads its own `TF_CONFIG` (the cluster's addresses and its own task). Every worker
  runs the same stage on the same prepared data; the chief (task "chief", or worker 0 when there is none)
  writes the stage's outputs and its MLflow run, the others only train.

`batch_size` stays the global batch: Keras splits each batch across the replicas, so results are comparable
with a one-device run at the same params. To keep each replica's batch when adding replicas, multiply
batch_size by the replica count and scale the learning rates with it (the linear rule, Goyal et al. 2017).
"""
from __future__ import annotations

import json
import os

from tinygray.pipeline.choices import STRATEGIES


class ClusterConfigError(ValueError):
    """TF_CONFIG is missing or does not describe this process's place in a cluster."""


def cluster_config() -> dict:
    """TF_CONFIG, parsed and checked: {"cluster": {"worker": [...], ...}, "task": {"type": ..., "index": ...}}."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ClusterConfigError(
            "train_teacher.distribute: multi_worker needs the TF_CONFIG environment variable on every worker, e.g. "
            'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\' '
            "(README, Scaling out); it is not set")
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        members = cluster[task["type"]]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ClusterConfigError(f"TF_CONFIG is not a cluster description TensorFlow can use ({error!r}): it needs "
                                 f"'cluster' (task type -> addresses) and 'task' (type and index); got {raw!r}") from None
    if not 0 <= index < len(members):
        raise ClusterConfigError(f"TF_CONFIG: task index {index} is outside the {len(members)} "
                                 f"'{task['type']}' addresses {members}")
    return config


def is_chief(name: str) -> bool:
    """Whether this process writes the stage's outputs: always, except a multi_worker task that is not the chief
    (TensorFlow's convention: task "chief", or worker 0 in a cluster without one)."""
    if name != "multi_worker":
        return True
    config = cluster_config()
    task_type, index = config["task"]["type"], int(config["task"]["index"])
    return task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in config["cluster"])


def task_name() -> str:
    """This process's task, e.g. "worker:1", for log lines; "local" outside a cluster."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return "local"
    task = json.loads(raw)["task"]
    return f"{task['type']}:{task['index']}"


def strategy(name: str):
    """The tf.distribute strategy train_teacher.distribute names. Call it before any other TensorFlow work:
    MultiWorkerMirroredStrategy sets up the cluster's collective ops and refuses once TF is initialised."""
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        cluster_config()
        return _reduce_leaf_by_leaf(tf.distribute.MultiWorkerMirroredStrategy())
    raise ValueError(f"train_teacher.distribute must be one of {list(STRATEGIES)}, got {name!r}")


def _reduce_leaf_by_leaf(chosen):
    """Keras 3's fit() cannot drive MultiWorkerMirroredStrategy as shipped (keras-team/keras#20585, open;
    tensorflow/tensorflow#72388). To build the model it reduces a whole (images, labels) batch in one
    `strategy.reduce` call, which takes one value ("TODO: support `value` being a nest" in tf.distribute) and
    whose collective refuses uint8 pixels; and it reduces the scalar loss and metrics with axis=0 ("Invalid
    reduction dimension 0 for input with 0 dimensions"). This strategy's reduce takes each leaf in turn, a
    scalar across replicas only, a dtype the collective lacks as float32. The gradients' all-reduce is not
    touched: the two-worker test checks both workers end with the same weights."""
    import tensorflow as tf

    reduce = chosen.reduce
    collective_dtypes = (tf.float16, tf.bfloat16, tf.float32, tf.float64, tf.int32, tf.int64)

    def reduce_leaf(reduce_op, leaf, axis):
        local = chosen.experimental_local_results(leaf)[0] if isinstance(leaf, tf.distribute.DistributedValues) else leaf
        if local.dtype not in collective_dtypes:
            leaf = tf.nest.map_structure(lambda value: tf.cast(value, tf.float32), leaf, expand_composites=True)
        return reduce(reduce_op, leaf, axis=axis if local.shape.rank else None)

    chosen.reduce = lambda reduce_op, value, axis=None: tf.nest.map_structure(
        lambda leaf: reduce_leaf(reduce_op, leaf, axis), value)
    return chosen


def describe(chosen, name: str) -> dict:
    """How the teacher trained, for its metrics: the strategy, its replicas, and the workers that took part."""
    workers = 1
    if name == "multi_worker":
        cluster = cluster_config()["cluster"]
        workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    return {"strategy": STRATEGIES[name], "replicas": int(chosen.num_replicas_in_sync), "workers": workers}


def weights_digest(model) -> str:
    """A short hash of the model's weights: every worker of a synchronous strategy ends with the same one."""
    import hashlib

    return hashlib.sha256(b"".join(weight.tobytes() for weight in model.get_weights())).hexdigest()[:16]
