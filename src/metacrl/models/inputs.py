"""Feature extractors that check their input shape and say what they expect."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["CheckedFeatures"]


class CheckedFeatures(nn.Sequential):
    """An ``nn.Sequential`` feature extractor that rejects inputs of the wrong shape.

    Learners call ``model.features`` directly, so a wrong image size would otherwise surface as a
    matrix-size error in the head. This raises a ``ValueError`` naming the expected shape.

    Args:
        *layers: The layers, applied in order.
        sample_shape: The expected shape of one example, e.g. ``(3, 84, 84)``.
        name: The model's name for error messages.

    Example:
        >>> g = CheckedFeatures(nn.Flatten(), sample_shape=(2, 3), name="Toy")
        >>> g(torch.zeros(4, 2, 3)).shape
        torch.Size([4, 6])
    """

    def __init__(self, *layers: nn.Module, sample_shape: tuple[int, ...], name: str) -> None:
        super().__init__(*layers)
        self.sample_shape = tuple(sample_shape)
        self.model_name = name

    def forward(self, x: Tensor) -> Tensor:
        """Check ``x`` is ``[batch, *sample_shape]``, then apply the layers.

        Args:
            x: A batch of inputs ``[batch, *sample_shape]``.

        Returns:
            The output of the last layer.

        Raises:
            ValueError: If ``x`` does not have the expected shape (the message names it).
        """
        if x.dim() != len(self.sample_shape) + 1 or tuple(x.shape[1:]) != self.sample_shape:
            expected = ", ".join(map(str, self.sample_shape))
            raise ValueError(
                f"{self.model_name} expects inputs [batch, {expected}], got {tuple(x.shape)}"
            )
        for layer in self:
            x = layer(x)
        return x
