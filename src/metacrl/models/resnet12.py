"""ResNet-12: the few-shot residual backbone (channels 64-160-320-640, DropBlock)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from metacrl.models.dropblock import DropBlock
from metacrl.models.inputs import CheckedFeatures
from metacrl.models.norm import batch_norm
from metacrl.validation import check_int

__all__ = ["ResNet12", "ResNetBlock"]


class ResNetBlock(nn.Module):
    """Three conv3x3-BN(-LeakyReLU) layers, a 1x1 shortcut, LeakyReLU, max-pool 2, then drop.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        drop_rate: Dropout rate after the block (0 disables; default: ``0.0``).
        drop_block: Use DropBlock (contiguous regions) instead of plain dropout (default:
            ``False``).
        block_size: DropBlock's square size (default: ``5``).
        track_running_stats: Keep BatchNorm running statistics (default: ``True``).

    Example:
        >>> block = ResNetBlock(3, 64)
        >>> block(torch.zeros(2, 3, 32, 32)).shape   # 64 channels, half the side
        torch.Size([2, 64, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        drop_rate: float = 0.0,
        drop_block: bool = False,
        block_size: int = 5,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()

        def bn() -> nn.Module:
            return batch_norm(out_channels, track_running_stats)

        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = bn()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = bn()
        self.conv3 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn3 = bn()
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            bn(),
        )
        self.pool = nn.MaxPool2d(2)
        self.drop: nn.Module = (
            DropBlock(drop_rate, block_size) if drop_block else nn.Dropout(drop_rate)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: Feature maps ``[B, in_channels, H, W]``.

        Returns:
            Feature maps ``[B, out_channels, H // 2, W // 2]``.
        """
        out = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        out = F.leaky_relu(self.bn2(self.conv2(out)), 0.1)
        out = self.bn3(self.conv3(out))
        out = F.leaky_relu(out + self.shortcut(x), 0.1)
        result: Tensor = self.drop(self.pool(out))
        return result


class ResNet12(nn.Module):
    """ResNet-12 as in MetaOptNet/FEAT: four residual blocks of 64, 160, 320 and 640 channels.

    LeakyReLU(0.1), max-pool after each block, dropout after blocks 1–2 and DropBlock
    (``block_size`` 5) after blocks 3–4, global average pooling to 640 features. About 12.4M
    parameters in the feature extractor. See :class:`~metacrl.models.Conv4` for the BatchNorm
    choices (``track_running_stats``).

    Args:
        in_channels: Input channels (default: ``3``).
        n_way: Outputs of the linear head (default: ``5``).
        image_size: Input height and width (default: ``84``).
        channels: Channels of the four blocks (default: ``(64, 160, 320, 640)``).
        drop_rate: Dropout/DropBlock rate (0 disables all dropping, e.g. for exact gradients;
            default: ``0.1``).
        block_size: DropBlock's square size (default: ``5``).
        track_running_stats: Keep BatchNorm running statistics (default: ``True``).

    Attributes:
        features: ``g``, ``[B, C, H, W] -> [B, channels[-1]]``.
        head: ``h``, ``nn.Linear(feature_dim, n_way)``.
        feature_dim: ``channels[-1]`` (640).

    Example:
        >>> net = ResNet12(n_way=5, image_size=32)
        >>> net.feature_dim, net(torch.zeros(2, 3, 32, 32)).shape
        (640, torch.Size([2, 5]))
    """

    def __init__(
        self,
        in_channels: int = 3,
        n_way: int = 5,
        image_size: int = 84,
        channels: tuple[int, int, int, int] = (64, 160, 320, 640),
        drop_rate: float = 0.1,
        block_size: int = 5,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"channels must list the 4 blocks' widths, got {channels!r}")
        check_int("image_size", image_size, minimum=16)  # four 2x poolings
        blocks = []
        previous = in_channels
        for i, width in enumerate(channels):
            blocks.append(
                ResNetBlock(
                    previous,
                    width,
                    drop_rate=drop_rate,
                    drop_block=i >= 2,
                    block_size=block_size,
                    track_running_stats=track_running_stats,
                )
            )
            previous = width
        self.features = CheckedFeatures(
            *blocks,
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            sample_shape=(in_channels, image_size, image_size),
            name="ResNet12",
        )
        self.feature_dim = channels[-1]
        self.head = nn.Linear(self.feature_dim, n_way)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``head(features(x))``.

        Args:
            x: A batch of images ``[B, in_channels, image_size, image_size]``.

        Returns:
            The head's outputs ``[B, n_way]``.
        """
        out: Tensor = self.head(self.features(x))
        return out
