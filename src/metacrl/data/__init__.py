"""Few-shot task datasets and the loader that stacks them into meta-batches.

Every dataset is map-style: ``len(ds)`` tasks, ``ds[i]`` is task ``i`` as
``(x_spt, y_spt, x_qry, y_qry)`` without the task axis, a pure function of the dataset's seed
and ``i``. :class:`TaskLoader` stacks consecutive tasks into meta-batches ``[T, ...]``, the
input of every learner's ``meta_step``.

* :class:`MiniImagenet`: dragen1860/MAML-Pytorch's folder format (or the common pickles),
  decoded once into an on-disk ``uint8`` cache.
* :class:`Omniglot`, :class:`CIFARFS`, :class:`FC100` and :class:`TieredImagenet`: the other
  standard few-shot benchmarks, from the files users already have (torchvision's Omniglot and
  CIFAR-100 layouts, tieredImageNet's ``.npz`` arrays), cached the same way.
* :class:`Sinusoid`: MAML's regression benchmark.
* :class:`ConfoundedShapes`: procedural shapes whose training tasks carry a nuisance tied to
  the label, redrawn per meta-batch.
* :class:`ConfoundedClipart`: the same confounders on real drawings (Debian's
  ``openclipart-png``), the second confounded benchmark.

Example:
    >>> from metacrl.data import ConfoundedShapes, TaskLoader
    >>> ds = ConfoundedShapes("train", n_way=5, k_shot=1, k_query=2, batchsz=8, meta_batch_size=4)
    >>> x_spt, y_spt, x_qry, y_qry = next(iter(TaskLoader(ds, batch_size=4)))
    >>> tuple(x_spt.shape), tuple(y_qry.shape)
    ((4, 5, 3, 32, 32), (4, 10))
"""

from __future__ import annotations

from metacrl.data.base import Task, TaskDataset
from metacrl.data.cifar import CIFARFS, FC100
from metacrl.data.class_images import ClassImageTasks
from metacrl.data.confounded import ConfoundedEpisode, ConfoundedTasks
from metacrl.data.confounded_clipart import ConfoundedClipart
from metacrl.data.confounded_shapes import ConfoundedShapes, ShapesEpisode
from metacrl.data.confounding import Confounder
from metacrl.data.episodes import Episode
from metacrl.data.fake_benchmarks import (
    write_fake_cifar100,
    write_fake_omniglot,
    write_fake_tiered_imagenet,
)
from metacrl.data.loader import TaskLoader
from metacrl.data.miniimagenet import MiniImagenet
from metacrl.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from metacrl.data.omniglot import Omniglot
from metacrl.data.shapes_nuisance import NUISANCES
from metacrl.data.sinusoid import Sinusoid
from metacrl.data.synthetic import write_fake_miniimagenet
from metacrl.data.tiered_imagenet import TieredImagenet

__all__ = [
    "CIFARFS",
    "FC100",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NUISANCES",
    "ClassImageTasks",
    "ConfoundedClipart",
    "ConfoundedEpisode",
    "ConfoundedShapes",
    "ConfoundedTasks",
    "Confounder",
    "Episode",
    "MiniImagenet",
    "Omniglot",
    "ShapesEpisode",
    "Sinusoid",
    "Task",
    "TaskDataset",
    "TaskLoader",
    "TieredImagenet",
    "write_fake_cifar100",
    "write_fake_miniimagenet",
    "write_fake_omniglot",
    "write_fake_tiered_imagenet",
]
