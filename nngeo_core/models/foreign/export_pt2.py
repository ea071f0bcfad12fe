"""``torch.export`` programs (``.pt2``) are refused: ``torch.export.load`` can run code from the file.

What the installed torch (2.14) does, read from its source in site-packages:

* ``torch/export/__init__.py``, ``load``: its docstring warns "uses pickle under the hood to load
  models. Never load data from an untrusted source", and it calls ``load_pt2``.
* ``torch/export/pt2_archive/_package.py``, ``_load_state_dict``: a weight whose entry in the
  archive's own ``model_weights_config.json`` says ``use_pickle`` is read with
  torch's loader with its weights-only restriction switched off, i.e. an unrestricted unpickler.
  The file decides.
* same file, ``_load_constants``: tensor constants likewise (the unrestricted unpickler);
  custom (torchbind) objects with ``torch._C._pickle_load_obj``; "opaque" objects with plain
  ``pickle.loads``: any global, any call.
* ``torch/_export/serde/serialize.py``, ``deserialize_torch_artifact`` (used for the sample inputs
  ``data/sample_inputs/model.pt`` of every program, and for the state_dict and constants of the
  older layout): tries ``torch.load(weights_only=True)`` and, when that refuses, retries with
  ``weights_only=False``; so a refused pickle is loaded anyway.
* ``load_pt2`` also opens AOTInductor packages (``data/aotinductor/``), compiled shared libraries
  loaded into the process: native code from the file.
* ``serialize.py``, ``deserialize_operator``: a node's target is any attribute path under ``torch``,
  ``operator`` or ``math`` the file names, called when the program runs.

So no ``torch.export.load`` of a foreign file is safe, and none is done: a file with the archive's
layout is refused with one line, read only as a zip listing (no member is unpickled or loaded).
"""

from __future__ import annotations

import io
import zipfile

from ...errors import NNGeoError

PT2_REFUSAL = (
    "refusing to load a torch.export program (.pt2): torch.export.load unpickles parts of it without "
    "restriction (torch.load weights_only=False, pickle.loads) and can load compiled code, so opening it "
    "can run code; upload its state_dict (safetensors) or an ONNX export instead"
)
# members only a torch.export archive has (current layout, then the older one)
_MARKERS = ("archive_format", "serialized_exported_program.json")


def is_pt2(data: bytes, name: str = "") -> bool:
    """Whether ``data`` is a torch.export archive: a ``.pt2`` name, or a zip with its members."""
    if name.lower().endswith(".pt2"):
        return True
    if data[:2] != b"PK":
        return False
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return False
    return any(n.rsplit("/", 1)[-1] in _MARKERS or "/data/aotinductor/" in f"/{n}" for n in names)


def refuse_pt2() -> NNGeoError:
    """The one-line refusal (see the module docstring for why)."""
    return NNGeoError(PT2_REFUSAL)


def load_pt2(data: bytes, name: str = "") -> None:
    """Always refuses: there is no safe way to load a torch.export program with this torch."""
    raise refuse_pt2()
