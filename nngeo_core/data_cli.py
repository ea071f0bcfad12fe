"""`nngeo data add PATH` and `nngeo data list`: datasets of your own (``data.user``).

This module is imported whenever the ``nngeo`` parser is built, so torch and PIL (through
``data.user``) load only when a dataset is added; listing reads the manifests alone.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import user_index
from .cli_args import parse_value, print_json
from .user_index import DEFAULT_MAX_MB, shape_text


def cmd_data_add(a: argparse.Namespace) -> int:
    """Read, check and store the dataset; print its name (``--json``: its manifest and whether it
    was new). A bad source is a one-line error (exit 2) and stores nothing."""
    # lazy: data.user loads torch and PIL (~1.5 s, measured); `nngeo --help` must not pay for them
    from .data import user

    size = parse_value(a.size) if a.size else None
    result = user.add_dataset(
        a.path,
        name=a.name,
        mode=a.mode,
        size=size,
        test_fraction=a.test_fraction,
        max_bytes=a.max_mb * 2**20,
    )
    m = result.manifest
    if a.json:
        alias = m["name"] if m["name"] != result.name else None
        print_json({"name": result.name, "alias": alias, "created": result.created, "manifest": m})
    else:
        verb = "stored" if result.created else "already stored"
        print(
            f"{verb}: {m['counts']['train']} train / {m['counts']['test']} test examples, "
            f"{shape_text(m['input_shape'])} inputs, {m['num_classes']} classes"
            + (f", alias {m['name']!r}" if m["name"] != result.name else ""),
            file=sys.stderr,
        )
        print(result.name)
    return 0


def cmd_data_list(a: argparse.Namespace) -> int:
    manifests = user_index.read_manifests()
    if a.json:
        print_json(
            [
                {
                    "name": m["id"],
                    "alias": m["name"] if m["name"] != m["id"] else None,
                    "input_shape": m["input_shape"],
                    "num_classes": m["num_classes"],
                    "class_names": m["class_names"],
                    "counts": m["counts"],
                    "source_kind": m["source_kind"],
                    "source": m["source"],
                    "created": m["created"],
                }
                for m in manifests
            ]
        )
        return 0
    if not manifests:
        print("(no datasets of your own; add one with `nngeo data add PATH`)")
    for m in manifests:
        print(f"{m['id']:18s} {user_index.describe(m)}")
    return 0


def add_commands(sub: Any) -> None:
    """The hook ``nngeo_core.cli`` calls for each module in ``COMMAND_MODULES``."""
    p = sub.add_parser("data", help="datasets of your own: add an image folder, zip, tensor file, IDX files or CSV")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    add = data_sub.add_parser(
        "add",
        help="read a dataset, check it and store it under its content hash",
        description="Read an image folder (one subfolder per class) or a zip of one, a .npz/.safetensors "
        "with x and y (optionally x_test/y_test), IDX files (MNIST format) or a CSV with a label column; "
        "store it as tensors under <data dir>/user/. Prints its name, user:<hash>, which run specs record.",
    )
    add.add_argument("path", help="the file or folder")
    add.add_argument("--name", help="an alias to use instead of user:<hash>")
    add.add_argument(
        "--mode", choices=["auto", "L", "RGB"], default="auto", help="image colour mode (default: the majority's)"
    )
    add.add_argument("--size", help="image size: one side or WIDTH,HEIGHT (default: the most common)")
    add.add_argument(
        "--test-fraction", type=float, default=0.2, help="test share when the source has no split (default %(default)s)"
    )
    add.add_argument("--max-mb", type=int, default=DEFAULT_MAX_MB, help="size limit in MB (default %(default)s)")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_data_add)

    ls = data_sub.add_parser("list", help="list the datasets of your own")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_data_list)
