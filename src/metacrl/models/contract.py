"""The contract every backbone fulfils: ``features`` (g), ``head`` (h) and ``feature_dim``."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["FeatureHead", "check_model"]


def check_model(model: object, *, name: str = "model") -> nn.Module:
    """Check that ``model`` follows the ``features``/``head``/``feature_dim`` contract.

    Every learner and :class:`~metacrl.MetaCRLRegularizer` works on any ``nn.Module`` that
    exposes a feature extractor ``features`` (g, mapping a batch of inputs to flat
    ``[batch, feature_dim]`` features), a ``head`` (h, mapping features to outputs) and the
    integer ``feature_dim``. The forward pass is taken to be ``head(features(x))``.

    Args:
        model: The object to check.
        name: How to call the object in error messages (default: ``"model"``).

    Returns:
        The model, unchanged.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``, lacks ``features`` or ``head`` modules,
            or has no integer ``feature_dim``.
        ValueError: If ``feature_dim`` is not positive.

    Example:
        >>> net = FeatureHead(nn.Linear(3, 8), nn.Linear(8, 2), feature_dim=8)
        >>> check_model(net) is net
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    for attr in ("features", "head"):
        sub = getattr(model, attr, None)
        if not isinstance(sub, nn.Module):
            got = "missing" if sub is None else type(sub).__name__
            raise TypeError(
                f"{name} ({type(model).__name__}) must expose `{attr}` as an nn.Module ({got}); "
                "metacrl needs the split f = head(features(x)). Wrap your two parts with "
                "metacrl.models.FeatureHead(features, head, feature_dim)."
            )
    dim = getattr(model, "feature_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(
            f"{name} ({type(model).__name__}) must expose an integer `feature_dim` "
            f"(the size of features(x) per example), got {dim!r}"
        )
    if dim <= 0:
        raise ValueError(f"{name}.feature_dim must be positive, got {dim}")
    return model


class FeatureHead(nn.Module):
    """Join a feature extractor and a head into a model that follows the metacrl contract.

    Args:
        features: The feature extractor g; must map ``[batch, ...]`` inputs to
            ``[batch, feature_dim]``.
        head: The head h, mapping ``[batch, feature_dim]`` features to outputs.
        feature_dim: The size of one example's features.

    Example:
        >>> net = FeatureHead(nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU()),
        ...                   nn.Linear(16, 5), feature_dim=16)
        >>> net(torch.zeros(4, 3, 2, 2)).shape
        torch.Size([4, 5])
    """

    def __init__(self, features: nn.Module, head: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.feature_dim = feature_dim
        check_model(self, name="FeatureHead")

    def forward(self, x: Tensor) -> Tensor:
        """Return ``head(features(x))``.

        Args:
            x: A batch of inputs, as ``features`` takes them.

        Returns:
            The head's outputs.
        """
        out: Tensor = self.head(self.features(x))
        return out
