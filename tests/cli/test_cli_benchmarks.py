"""metacrl train --dataset omniglot|cifar-fs|fc100|tiered-imagenet: defaults, building, a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from metacrl.cli import main
from metacrl.cli.build import build_dataset, build_model
from metacrl.cli.config import ConfigError, TrainConfig
from metacrl.data import (
    CIFARFS,
    FC100,
    Omniglot,
    TieredImagenet,
    write_fake_cifar100,
    write_fake_omniglot,
    write_fake_tiered_imagenet,
)

TINY = [
    *("--iterations", "2", "--val-every", "2", "--val-tasks", "2", "--test-tasks", "2"),
    *("--hidden", "4", "--ways", "2", "--queries", "1", "--shots", "1"),
    *("--meta-batch", "2", "--crl-steps", "1", "--no-progress", "--metacrl"),
]


@pytest.fixture(scope="module")
def omniglot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough characters for MAML's split (1100 train, 100 val, the rest test), 2 images each."""
    return write_fake_omniglot(
        tmp_path_factory.mktemp("omniglot"), (1200, 3), images_per_character=2, image_size=4
    )


@pytest.mark.parametrize(
    ("dataset", "image_size", "inner_lr"),
    [
        ("omniglot", 28, 0.4),
        ("cifar-fs", 32, 0.01),
        ("fc100", 32, 0.01),
        ("tiered-imagenet", 84, 0.01),
    ],
)
def test_defaults_of_the_benchmarks(dataset: str, image_size: int, inner_lr: float) -> None:
    cfg = TrainConfig(dataset=dataset, data_root="/data").resolved()  # type: ignore[arg-type]
    assert (cfg.image_size, cfg.inner_lr, cfg.backbone, cfg.metric) == (
        image_size,
        inner_lr,
        "conv4",
        "accuracy",
    )
    with pytest.raises(ConfigError, match=f"--dataset {dataset} needs --data-root PATH"):
        TrainConfig(dataset=dataset).resolved()  # type: ignore[arg-type]


def test_omniglot_gets_a_grey_backbone() -> None:
    grey = build_model(TrainConfig(dataset="omniglot", data_root="/d", hidden=4).resolved())
    rgb = build_model(TrainConfig(dataset="cifar-fs", data_root="/d", hidden=4).resolved())
    assert grey.features[0][0].in_channels == 1 and rgb.features[0][0].in_channels == 3


def test_build_dataset_makes_each_benchmark_with_its_cache_dir(
    tmp_path: Path, omniglot_root: Path
) -> None:
    roots = {
        "omniglot": omniglot_root,
        "cifar-fs": write_fake_cifar100(tmp_path / "c", images_per_class=(1, 1)),
        "tiered-imagenet": write_fake_tiered_imagenet(tmp_path / "t", (3, 2, 2), 2, image_size=8),
    }
    roots["fc100"] = roots["cifar-fs"]
    kinds = {
        "omniglot": Omniglot,
        "cifar-fs": CIFARFS,
        "fc100": FC100,
        "tiered-imagenet": TieredImagenet,
    }
    for dataset, kind in kinds.items():
        cache = tmp_path / f"cache-{dataset}"
        cfg = TrainConfig(
            dataset=dataset,  # type: ignore[arg-type]
            data_root=str(roots[dataset]),
            cache_dir=str(cache),
            ways=2,
            queries=1,
            image_size=8,
        ).resolved()
        ds = build_dataset(cfg, "test", tasks=3, seed=0, progress=False)
        assert type(ds) is kind and len(ds) == 3 and ds.cache_path is not None
        assert ds.cache_path.parent == cache and ds[0][0].shape[-1] == 8


@pytest.mark.parametrize("dataset", ["omniglot", "cifar-fs", "fc100", "tiered-imagenet"])
def test_train_runs_on_each_benchmark(tmp_path: Path, omniglot_root: Path, dataset: str) -> None:
    if dataset == "omniglot":
        root = omniglot_root
    elif dataset == "tiered-imagenet":
        root = write_fake_tiered_imagenet(tmp_path / "d", (2, 2, 2), 2, image_size=16)
    else:
        root = write_fake_cifar100(tmp_path / "d", images_per_class=(1, 1))
    size = "28" if dataset == "omniglot" else "16"
    out = tmp_path / "run"
    args = ["--dataset", dataset, "--data-root", str(root), "--image-size", size]
    assert main(["train", *TINY, *args, "--out", str(out)]) == 0
    assert (out / "results.json").is_file()


def test_a_broken_benchmark_root_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["--dataset", "cifar-fs", "--data-root", str(tmp_path), "--out", str(out)]
    assert main(["train", *TINY, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("metacrl: error: CIFAR-100 folder not found") and len(err.splitlines()) == 1
    )
    assert not out.exists()
