"""The MLP of MAML's sinusoid regression benchmark."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from metacrl.models.inputs import CheckedFeatures

__all__ = ["MLP"]


class MLP(nn.Module):
    """A ReLU MLP split into ``features`` (the hidden layers) and a linear ``head``.

    The defaults are MAML's sinusoid network: 1 input, two hidden layers of 40, 1 output
    (1,761 parameters).

    Args:
        in_features: Input size (default: ``1``).
        hidden: Widths of the hidden layers (at least one; default: ``(40, 40)``).
        out_features: Outputs of the head (default: ``1``).

    Example:
        >>> net = MLP()
        >>> net.feature_dim, net(torch.zeros(10, 1)).shape
        (40, torch.Size([10, 1]))
    """

    def __init__(
        self, in_features: int = 1, hidden: Sequence[int] = (40, 40), out_features: int = 1
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("hidden must list at least one layer width")
        layers: list[nn.Module] = []
        previous = in_features
        for width in hidden:
            layers += [nn.Linear(previous, width), nn.ReLU()]
            previous = width
        self.features = CheckedFeatures(*layers, sample_shape=(in_features,), name="MLP")
        self.feature_dim = int(hidden[-1])
        self.head = nn.Linear(self.feature_dim, out_features)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``head(features(x))``.

        Args:
            x: A batch of inputs ``[B, in_features]``.

        Returns:
            The head's outputs ``[B, out_features]``.
        """
        out: Tensor = self.head(self.features(x))
        return out
