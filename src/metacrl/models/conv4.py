"""Conv4: the 4-block convolutional backbone of MAML and ProtoNet."""

from __future__ import annotations

from torch import Tensor, nn

from metacrl.models.inputs import CheckedFeatures
from metacrl.models.norm import batch_norm
from metacrl.validation import check_int

__all__ = ["Conv4", "conv_block"]


def conv_block(in_channels: int, out_channels: int, track_running_stats: bool = True) -> nn.Module:
    """Return conv3x3 (padding 1) → BatchNorm → ReLU → max-pool 2.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        track_running_stats: Keep BatchNorm running statistics (see :class:`Conv4`; default:
            ``True``).

    Returns:
        The block as an ``nn.Sequential``.

    Example:
        >>> conv_block(3, 32)(torch.zeros(2, 3, 84, 84)).shape   # halves the side
        torch.Size([2, 32, 42, 42])
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        batch_norm(out_channels, track_running_stats),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    """The Conv4 backbone: four conv3x3-BatchNorm-ReLU-maxpool blocks, then a linear head.

    ``hidden=32`` at 84×84 is MAML's miniImageNet network (800 features, 32,901 parameters with
    a 5-way head); ``hidden=64`` is ProtoNet's (1,600 features, 113,088 parameters in the
    feature extractor).

    BatchNorm: in ``train()`` mode every forward normalises with the statistics of its own batch,
    so a learner that runs one task at a time uses per-task statistics (transductive, as in
    MAML, whose reference implementation also normalises with batch statistics at test time).
    With ``track_running_stats=True`` (default) running averages are also kept for ``eval()``
    mode (what ProtoNet-style evaluation usually uses). With ``track_running_stats=False`` the
    model has no buffers and always uses batch statistics (:class:`TaskBatchNorm`); nothing is
    mutated during a forward, so ``torch.func.vmap`` over tasks works, second-order
    meta-gradients included (``backend="vmap"``).

    Args:
        in_channels: Input channels (3 for RGB; default: ``3``).
        hidden: Channels of every block (32 for MAML, 64 for ProtoNet; default: ``32``).
        n_way: Outputs of the linear head (default: ``5``).
        image_size: Input height and width (to compute ``feature_dim``; default: ``84``).
        track_running_stats: Keep BatchNorm running statistics (default: ``True``).

    Attributes:
        features: ``g``: the four blocks and a flatten, ``[B, C, H, W] -> [B, feature_dim]``.
        head: ``h``: ``nn.Linear(feature_dim, n_way)``.
        feature_dim: ``hidden * (image_size // 16) ** 2``.

    Example:
        >>> net = Conv4(hidden=32, n_way=5, image_size=84)
        >>> net.feature_dim
        800
        >>> net(torch.zeros(2, 3, 84, 84)).shape
        torch.Size([2, 5])
    """

    def __init__(
        self,
        in_channels: int = 3,
        hidden: int = 32,
        n_way: int = 5,
        image_size: int = 84,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden", hidden), ("n_way", n_way)):
            check_int(name, value)
        check_int("image_size", image_size, minimum=16)  # four 2x poolings
        self.features = CheckedFeatures(
            conv_block(in_channels, hidden, track_running_stats),
            conv_block(hidden, hidden, track_running_stats),
            conv_block(hidden, hidden, track_running_stats),
            conv_block(hidden, hidden, track_running_stats),
            nn.Flatten(),
            sample_shape=(in_channels, image_size, image_size),
            name="Conv4",
        )
        self.feature_dim = hidden * (image_size // 16) ** 2
        self.head = nn.Linear(self.feature_dim, n_way)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``head(features(x))`` for images ``[B, C, image_size, image_size]``.

        Args:
            x: A batch of images ``[B, in_channels, image_size, image_size]``.

        Returns:
            The head's outputs ``[B, n_way]``.
        """
        out: Tensor = self.head(self.features(x))
        return out
