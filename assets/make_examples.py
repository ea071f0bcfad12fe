"""Train the example checkpoints behind the Upload page's 'try an example' buttons.

    python assets/make_examples.py

writes assets/examples/mlp_xor.safetensors (an mlp trained on xor) and
assets/examples/fcn_mnist_digits.safetensors (fcn_mnist trained on digits resized to 28×28),
both in nngeo's checkpoint format, with their run spec and training history. Seeded: running it
again gives the same files on the same machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nngeo_core import checkpoint  # noqa: E402
from nngeo_core.defaults import default_train  # noqa: E402
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec  # noqa: E402
from nngeo_core.train import train  # noqa: E402

OUT = ROOT / "assets" / "examples"
MAX_BYTES = 1_000_000

EXAMPLES = {
    "mlp_xor.safetensors": RunSpec(
        data=DataSpec("xor"),
        model=ModelSpec("mlp", {"widths": (16, 16)}),
        train=default_train("mlp", "xor").replace(epochs=40, device="cpu"),
    ),
    "fcn_mnist_digits.safetensors": RunSpec(
        data=DataSpec("digits", params={"resize": 28}),
        model=ModelSpec("fcn_mnist"),
        train=default_train("fcn_mnist", "digits").replace(epochs=10, device="cpu"),
    ),
}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, spec in EXAMPLES.items():
        result = train(spec)
        path = checkpoint.save(
            OUT / name,
            result.model.cpu(),
            model_spec=spec.model,
            data_spec=spec.data,
            run_spec=spec,
            history=result.history.to_dict("records"),
        )
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SystemExit(f"{name} is {size} bytes, over the {MAX_BYTES} byte budget for examples")
        print(f"{path.relative_to(ROOT)}: {size / 1024:.0f} KiB, test accuracy {result.test_accuracy:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
