"""Sensible training defaults per model family, so `nngeo train --model M --data D` just works."""

from __future__ import annotations

from .specs import TrainSpec

IMAGE_MODELS_SMALL = {"fcn_mnist", "lenet5", "cnn_mnist"}
IMAGE_MODELS_CIFAR = {"vgg11", "resnet20"}


def default_train(model: str, data: str) -> TrainSpec:
    """2-D toys train in seconds with Adam; image models get a few epochs of Adam at 1e-3."""
    if model in IMAGE_MODELS_CIFAR:
        return TrainSpec(
            epochs=10, batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine"
        )
    if model in IMAGE_MODELS_SMALL or any(name in data for name in ("digits", "mnist", "cifar")):
        return TrainSpec(epochs=15, batch_size=64, optimizer="adam", lr=1e-3)
    return TrainSpec(epochs=20, batch_size=64, optimizer="adam", lr=1e-2)


def default_data_params(model: str, data: str, params: dict) -> dict:
    """MNIST-shaped models on `digits` (incl. derived tasks on it) get digits resized to 28×28,
    so `--model fcn_mnist --data digits` is the 784-input net of the papers, offline."""
    out = dict(params)
    if model in IMAGE_MODELS_SMALL and "digits" in data.split(":") and "resize" not in out:
        out["resize"] = 28
    return out
