"""`nngeo export KEY --format ...`: result tables and models from one command.

The table formats (csv, parquet, ...) export a result's table as before; the model formats
(``export.FORMATS``: safetensors, state_dict, pruned, onnx) export a stored model, or one level of
a pruning sweep with ``--level S [--seed N]``. This module is imported when the parser is built,
so the export itself (torch) loads only when a model is exported.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .cli_args import print_json, progress_for
from .errors import NNGeoError

# the names of export.FORMATS, repeated here so `nngeo --help` needs no torch
MODEL_FORMATS = ("safetensors", "state_dict", "pruned", "onnx")
TABLE_FORMATS = ("csv", "parquet")


def add_export_arguments(p: argparse.ArgumentParser, table_formats: Sequence[str] = TABLE_FORMATS) -> None:
    """The arguments of `nngeo export`: the key, ``--format`` (table or model formats),
    ``--level``/``--seed`` (a sweep level), ``-o/--output`` and ``--json``."""
    p.add_argument("run", help="result key or unique prefix (a table; or a model, or a prune-sweep for --level)")
    p.add_argument(
        "--format",
        choices=[*table_formats, *MODEL_FORMATS],
        default=table_formats[0] if table_formats else MODEL_FORMATS[0],
        help="table formats export the result table; "
        f"{', '.join(MODEL_FORMATS)} export the model (default %(default)s)",
    )
    p.add_argument("--level", type=float, help="model formats: the sparsity level of a prune-sweep to export")
    p.add_argument("--seed", type=int, help="model formats: which seed of the sweep (default: its first)")
    p.add_argument("-o", "--output", help="file to write (default: a name from the result, in this folder)")
    p.add_argument("--json", action="store_true")


def is_model_format(a: argparse.Namespace) -> bool:
    """Whether `nngeo export` was asked for a model; ``--level``/``--seed`` with a table format
    is a mistake, told in one line."""
    if a.format in MODEL_FORMATS:
        return True
    if getattr(a, "level", None) is not None or getattr(a, "seed", None) is not None:
        raise NNGeoError(f"--level and --seed choose a model to export; use --format {'|'.join(MODEL_FORMATS)}")
    return False


def cmd_export_model(a: argparse.Namespace) -> int:
    """Export a model or sweep level as ``a.format`` to ``a.output`` (default: a name from the
    result); print the path (``--json``: a record). Nothing is written when the export fails."""
    # lazy: the export loads torch, the pruning lab and the store (6.9 s, measured); `nngeo --help` must not pay
    from .export import exportable, filename, to_format, write_atomic
    from .store import Store, default_store

    if a.format not in MODEL_FORMATS:
        raise NNGeoError(f"{a.format!r} is not a model format; model formats: {', '.join(MODEL_FORMATS)}")
    store = Store(a.store) if getattr(a, "store", None) else default_store()
    if a.output:
        _check_destination(Path(a.output))  # before a rebuild that may take minutes
    # a rebuilt sweep level retrains when the sweep fine-tuned: show progress on stderr
    progress, bar = progress_for(f"export {a.format}", bool(a.json))
    try:
        ex = exportable(store, a.run, level=a.level, seed=a.seed, progress=progress)
        data = to_format(ex, a.format)
    finally:
        bar.close()
    dest = Path(a.output) if a.output else Path(filename(ex, a.format))
    _check_destination(dest)
    write_atomic(dest, data)
    if a.json:
        print_json(
            {
                "path": str(dest),
                "format": a.format,
                "bytes": len(data),
                "source": ex.source,
                "sparsity": ex.sparsity,
            }
        )
    else:
        print(dest)
    return 0


def _check_destination(dest: Path) -> None:
    if dest.is_dir():
        raise NNGeoError(f"cannot write {dest}: it is a folder; give a file name")
    if not dest.parent.is_dir():
        raise NNGeoError(f"cannot write {dest}: the folder {dest.parent} does not exist")
