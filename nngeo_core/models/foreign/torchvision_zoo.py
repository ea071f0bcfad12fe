"""torchvision classification architectures recognised from a plain state_dict, and timm ones by name.

timm (optional) is imported only when a ``timm:NAME`` is named; its models are built with
``pretrained=False`` (nothing is downloaded), their class count and input channels read from the
weights at the layers timm's config names (``load_timm``).

Recognition reads key names and shapes only. Every builder of
``torchvision.models.list_models(module=torchvision.models)`` (plus the variants in ``VARIANTS``
whose keys differ, e.g. GoogLeNet without its auxiliary heads) has a *signature*: its state_dict's
keys and shapes, built once on the meta device (no memory, no initialisation), with the class count
abstracted (the builder is asked for ``SENTINEL_CLASSES`` classes, and every dimension of that size
becomes ``CLASSES``) and the stem conv's input channels abstracted (``CHANNELS``). A state_dict fits
a signature when it has exactly its keys and every shape agrees once one class count and one
channel count are read from the weights. Several fits are an ``AmbiguousArchitecture`` (asked,
never guessed); ``arch=NAME`` chooses.

Speed: signatures are computed lazily and cached on disk under ``get_settings().home / "cache"``
(one JSON file per torchvision version) and in memory for the process. A cold call does not build
every builder: torchvision's builders live in one module per family (``torchvision.models.resnet``
holds resnet18 ... wide_resnet101_2), and the members of a family share their top-level child names
(``conv1, bn1, layer1, ..., fc``; ``test_every_family_shares_its_top_level_names`` checks it for the
installed torchvision). So one representative per family (its smallest, by the parameter count in
torchvision's weight metadata, read without downloading) tells the family's top-level names, and
only the families whose names include all of the state_dict's are built. ``bench/foreign_load.py``
measures cold and warm costs.
"""

from __future__ import annotations

import difflib
import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision
import torchvision.models as tvm
from torch import nn
from torch.overrides import TorchFunctionMode

from ...errors import NNGeoError, one_line
from ...settings import get_settings
from ..mlp import ResidualBlock
from .base import AmbiguousArchitecture, ForeignModel, describe_state, fit_line, shape_text

SENTINEL_CLASSES = 9973  # a prime no torchvision layer width equals: its dimensions are the class count
CLASSES = -1  # marks the class count in a signature's shapes
CHANNELS = -2  # marks the stem conv's input channels
INDEX_FORMAT = 1
DEFAULT_CHANNELS = 3
# builder keyword arguments that change the keys (and that the weights therefore reveal)
VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    "googlenet": ({}, {"aux_logits": False}),
    "inception_v3": ({}, {"aux_logits": False}),
}
SHOWN_CANDIDATES = 2  # closest builders named when nothing fits
TIMM_PREFIX = "timm:"
TORCHVISION_PREFIX = "torchvision:"


# -- signatures --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signature:
    name: str  # the torchvision builder
    kwargs: dict[str, Any]  # builder arguments besides weights and num_classes
    keys: tuple[str, ...]  # state_dict order
    shapes: tuple[tuple[int, ...], ...]  # with CLASSES / CHANNELS markers
    stem: str | None  # the stem conv's weight key (its dim 1 is CHANNELS)

    @property
    def id(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.name}({args})" if args else self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kwargs": self.kwargs,
            "keys": list(self.keys),
            "shapes": [list(s) for s in self.shapes],
            "stem": self.stem,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Signature:
        return cls(
            name=str(d["name"]),
            kwargs=dict(d["kwargs"]),
            keys=tuple(d["keys"]),
            shapes=tuple(tuple(int(n) for n in s) for s in d["shapes"]),
            stem=d["stem"],
        )


class _ParamsOnMeta(TorchFunctionMode):
    """Tensor factories without a device go to the meta device, except ``arange``/``linspace``,
    whose values some builders (RegNet's block widths) read with ``tolist()`` while building."""

    _KEEP = frozenset({torch.arange, torch.linspace, torch.logspace, torch.tensor, torch.as_tensor})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func not in self._KEEP and kwargs.get("device") is None and func in _FACTORIES:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


_FACTORIES = frozenset(
    {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.randint, torch.eye}
)


# in-place tensor methods that change values only (never a shape): initialisers call these
_VALUE_ONLY = frozenset(
    getattr(torch.Tensor, n)
    for n in (
        "normal_", "uniform_", "zero_", "fill_", "erfinv_", "mul_", "add_", "sub_", "div_", "clamp_",
        "copy_", "exponential_", "bernoulli_", "random_",
    )
)  # fmt: skip


class _SkipInitOnMeta(TorchFunctionMode):
    """Initialisers' in-place calls on meta tensors return at once: they have no values to change,
    and dispatching them is most of a meta build's time (2.4x faster over all builders, measured)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _VALUE_ONLY and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


def _build_meta(name: str, kwargs: Mapping[str, Any], num_classes: int) -> nn.Module:
    with warnings.catch_warnings():  # GoogLeNet / Inception warn about their default initialisation
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"), _SkipInitOnMeta():
                return tvm.get_model(name, weights=None, num_classes=num_classes, **kwargs)
        except NotImplementedError:  # the builder reads a tensor's values (RegNet): only parameters on meta
            with _ParamsOnMeta(), _SkipInitOnMeta():
                return tvm.get_model(name, weights=None, num_classes=num_classes, **kwargs)


def stem_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first ``Conv2d`` registered (the one the image enters), when it is an ordinary conv on
    ``DEFAULT_CHANNELS`` channels; ``None`` otherwise."""
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.groups == 1 and module.in_channels == DEFAULT_CHANNELS:
                return path, module
            return None
    return None


def signature_of(name: str, kwargs: Mapping[str, Any] | None = None) -> Signature:
    kwargs = dict(kwargs or {})
    model = _build_meta(name, kwargs, SENTINEL_CLASSES)
    stem = stem_conv(model)
    stem_key = f"{stem[0]}.weight" if stem else None
    keys, shapes = [], []
    for key, value in model.state_dict().items():
        shape = [CLASSES if d == SENTINEL_CLASSES else int(d) for d in value.shape]
        if key == stem_key:
            shape[1] = CHANNELS
        keys.append(key)
        shapes.append(tuple(shape))
    return Signature(name=name, kwargs=kwargs, keys=tuple(keys), shapes=tuple(shapes), stem=stem_key)


def builder_names() -> list[str]:
    return list(tvm.list_models(module=tvm))


def family_of(name: str) -> str:
    return tvm.get_model_builder(name).__module__.rsplit(".", 1)[-1]


def families() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in builder_names():
        out.setdefault(family_of(name), []).append(name)
    return out


def _num_params(name: str) -> int:
    """The parameter count torchvision's weight metadata gives (no download); a large number if none."""
    try:
        return int(tvm.get_model_weights(name).DEFAULT.meta["num_params"])
    except Exception:  # a builder without weights metadata
        return 1 << 62


def _top_level(keys: Iterable[str]) -> frozenset[str]:
    return frozenset(k.split(".", 1)[0] for k in keys)


# -- the index: signatures by family, on disk and in memory ----------------------------------------
@dataclass
class _Index:
    path: Path
    prefixes: dict[str, list[str]] = field(default_factory=dict)  # family -> top-level names
    entries: dict[str, list[Signature]] = field(default_factory=dict)  # family -> its signatures

    def save(self) -> None:
        data = {
            "format": INDEX_FORMAT,
            "torchvision": torchvision.__version__,
            "prefixes": self.prefixes,
            "entries": {f: [s.to_json() for s in sigs] for f, sigs in self.entries.items()},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{self.path.name}")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)
        except OSError:  # a read-only home only costs the next process a rebuild
            pass


_LOCK = threading.Lock()
_MEMORY: dict[str, _Index] = {}  # torchvision version -> index (process-wide, whatever the home)


def index_path() -> Path:
    return get_settings().home / "cache" / f"torchvision-{torchvision.__version__}-signatures.json"


def _read_index(path: Path) -> _Index:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != INDEX_FORMAT or data.get("torchvision") != torchvision.__version__:
            return _Index(path)
        entries = {f: [Signature.from_json(s) for s in sigs] for f, sigs in data["entries"].items()}
        return _Index(path, prefixes={f: list(p) for f, p in data["prefixes"].items()}, entries=entries)
    except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: rebuilt
        return _Index(path)


def _index() -> _Index:
    """The process's index; a home without the cache file gets it written (the settings are read
    afresh, so the home can change within a process, as it does between tests)."""
    version = torchvision.__version__
    path = index_path()
    idx = _MEMORY.get(version)
    if idx is None:
        idx = _MEMORY[version] = _read_index(path)
    elif idx.path != path:
        idx.path = path
        if not path.is_file() and idx.prefixes:
            idx.save()
    return idx


def _ensure_prefixes(idx: _Index, fams: Mapping[str, list[str]]) -> bool:
    missing = [f for f in fams if f not in idx.prefixes]
    for fam in missing:
        rep = min(fams[fam], key=_num_params)
        idx.prefixes[fam] = sorted(_top_level(signature_of(rep).keys))
    return bool(missing)


def _ensure_family(idx: _Index, fams: Mapping[str, list[str]], fam: str) -> bool:
    if fam in idx.entries:
        return False
    idx.entries[fam] = [signature_of(n, kw) for n in fams[fam] for kw in VARIANTS.get(n, ({},))]
    return True


def signatures(state_keys: Iterable[str] | None = None) -> list[Signature]:
    """The signatures of the families that could hold keys like ``state_keys`` (every family when
    ``None``), computed on first need and cached."""
    fams = families()
    with _LOCK:
        idx = _index()
        changed = _ensure_prefixes(idx, fams)
        if state_keys is None:
            wanted = list(fams)
        else:
            top = _top_level(state_keys)
            wanted = [f for f in fams if top <= set(idx.prefixes[f])]
        for fam in wanted:
            changed = _ensure_family(idx, fams, fam) or changed
        if changed:
            idx.save()
        return [s for fam in wanted for s in idx.entries[fam]]


def _related_signatures(state_keys: Iterable[str], limit: int = 3) -> list[Signature]:
    """Signatures of the ``limit`` families whose top-level names overlap the state_dict's most
    (for naming the closest builders when nothing fits)."""
    fams = families()
    top = _top_level(state_keys)
    with _LOCK:
        idx = _index()
        changed = _ensure_prefixes(idx, fams)
        overlap = {f: len(top & set(p)) / len(top | set(p)) for f, p in idx.prefixes.items() if f in fams}
        wanted = [f for f in sorted(overlap, key=lambda f: -overlap[f]) if overlap[f] > 0][:limit]
        for fam in wanted:
            changed = _ensure_family(idx, fams, fam) or changed
        if changed:
            idx.save()
        return [s for fam in wanted for s in idx.entries[fam]]


# -- fitting a state_dict to a signature ------------------------------------------------------------
@dataclass
class Fit:
    signature: Signature
    missing: list[str]
    unexpected: list[str]
    differ: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, found, expected
    num_classes: int | None
    in_channels: int | None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.differ) and self.num_classes is not None

    @property
    def distance(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.differ)

    def why_not(self) -> str:
        """E.g. "resnet18: 2 keys missing (fc.bias, ...), 1 shape differs (conv1.weight 64×1×7×7 vs 64×3×7×7)"."""
        parts = []
        for what, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                more = ", …" if len(keys) > 1 else ""
                parts.append(f"{len(keys)} key{'s' if len(keys) > 1 else ''} {what} ({keys[0]}{more})")
        if self.differ:
            key, got, want = self.differ[0]
            n = len(self.differ)
            parts.append(
                f"{n} shape{'s differ' if n > 1 else ' differs'} ({key} {shape_text(got)} vs {shape_text(want)})"
            )
        return f"{self.signature.id}: {', '.join(parts) or 'fits'}"


def fit(sig: Signature, shapes: Mapping[str, tuple[int, ...]]) -> Fit:
    expected = dict(zip(sig.keys, sig.shapes, strict=True))
    missing = [k for k in sig.keys if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    common = [k for k in sig.keys if k in shapes]
    # the class count: what the weights have where the signature has CLASSES (one value, or no fit)
    seen = [
        got[i]
        for k in common
        for i, d in enumerate(expected[k])
        if d == CLASSES and len(got := shapes[k]) == len(expected[k])
    ]
    num_classes = max(set(seen), key=seen.count) if seen else None
    in_channels = None
    if sig.stem is not None and sig.stem in shapes and len(shapes[sig.stem]) > 1:
        in_channels = int(shapes[sig.stem][1])
    marks = {CLASSES: num_classes if num_classes is not None else SENTINEL_CLASSES, CHANNELS: in_channels}
    differ = []
    for k in common:
        want = tuple(marks.get(d, d) if d < 0 else d for d in expected[k])
        if tuple(shapes[k]) != want:
            shown = tuple(DEFAULT_CHANNELS if d is None else int(d) for d in want)
            differ.append((k, tuple(shapes[k]), shown))
    return Fit(sig, missing, unexpected, differ, num_classes, in_channels)


def _shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(int(d) for d in v.shape) for k, v in state.items()}


# -- building --------------------------------------------------------------------------------------
def build_torchvision(spec: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised module from a torchvision spec (as ``load_torchvision`` returns)."""
    name = str(spec["arch"])
    if name not in builder_names():
        raise NNGeoError(f"no torchvision classification architecture named {name!r} in torchvision {tv_version()}")
    with warnings.catch_warnings():  # GoogLeNet / Inception warn about their default initialisation
        warnings.simplefilter("ignore")
        model = tvm.get_model(name, weights=None, num_classes=int(spec["num_classes"]), **dict(spec.get("kwargs", {})))
    channels = int(spec.get("in_channels", DEFAULT_CHANNELS))
    if channels != DEFAULT_CHANNELS:
        _replace_stem(model, channels)
    return model


class TorchvisionBody(ResidualBlock):
    """A torchvision classifier with its head replaced by ``nn.Identity``: its output is the
    representation the head reads (the pooled features), so the FeedForward that holds it has
    one hidden representation, as every zoo model has."""

    def __init__(self, net: nn.Module, original_prefix: str = "") -> None:
        super().__init__()
        self.net = net
        # (our key prefix, the builder's): exports name the weights as torchvision's model does
        self.original_names = ("net.", original_prefix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TorchvisionHead(nn.Module):
    """The head taken out of a torchvision classifier; flat logits even where the head ends in a
    pooled conv (SqueezeNet's, whose model flattens after it)."""

    def __init__(self, head: nn.Module, original_name: str = "fc") -> None:
        super().__init__()
        self.head = head
        self.original_names = ("head.", f"{original_name}.")  # see TorchvisionBody

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(x)
        return y.flatten(1) if y.dim() > 2 else y


def feedforward_parts(model: nn.Module) -> list[nn.Module]:
    """``[body, head]`` of a torchvision classifier: its head is the last top-level child with
    parameters (``fc``, ``classifier``, ``heads``, ``head``: every builder registers it last), which
    the model's own forward then calls as an identity (SqueezeNet: its features, then its head).
    ``model`` is changed in place."""
    if isinstance(model, tvm.SqueezeNet):  # its forward flattens the head's output, not its input
        return [TorchvisionBody(model.features, "features."), TorchvisionHead(model.classifier, "classifier")]
    named = [(n, c) for n, c in model.named_children() if any(True for _ in c.parameters())]
    if not named:
        raise NNGeoError(f"{type(model).__name__} has no head with weights to split off")
    name, head = named[-1]
    setattr(model, name, nn.Identity())
    return [TorchvisionBody(model), TorchvisionHead(head, name)]


def tv_version() -> str:
    return torchvision.__version__


def _replace_stem(model: nn.Module, channels: int) -> None:
    """The stem conv rebuilt for ``channels`` inputs, every other setting kept."""
    found = stem_conv(model)
    if found is None:
        raise NNGeoError(f"{type(model).__name__} has no ordinary stem conv to take {channels} input channels")
    path, old = found
    new = nn.Conv2d(
        channels,
        old.out_channels,
        old.kernel_size,  # type: ignore[arg-type]
        stride=old.stride,  # type: ignore[arg-type]
        padding=old.padding,  # type: ignore[arg-type]
        dilation=old.dilation,  # type: ignore[arg-type]
        groups=old.groups,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, child, new)


def _load_fitting(f: Fit, state: Mapping[str, torch.Tensor]) -> ForeignModel:
    assert f.num_classes is not None  # a fit that is ok has one
    spec: dict[str, Any] = {
        "arch": f.signature.name,
        "num_classes": int(f.num_classes),
        "in_channels": int(f.in_channels if f.in_channels is not None else DEFAULT_CHANNELS),
        "source": "torchvision",
        "kwargs": dict(f.signature.kwargs),
        "torchvision": tv_version(),
    }
    # the random initialisation (overwritten by the state) must not move the caller's generator
    with torch.random.fork_rng(devices=[]):
        model = build_torchvision(spec)
    strict_load(model, state)
    return ForeignModel(model.eval(), spec)


def strict_load(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``load_state_dict(strict=True)``, each tensor in the model's dtype, with the model's own
    layout versions (``_metadata``; MNASNet refuses a state_dict without one, and safetensors and
    rebuilt dicts carry none): the keys and shapes were matched against that very layout."""
    ref = model.state_dict()
    cast = OrderedDict((k, v.to(ref[k].dtype)) for k, v in state.items())
    cast._metadata = getattr(ref, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    model.load_state_dict(cast, strict=True)


# -- the entry points ------------------------------------------------------------------------------
def matches(state: Mapping[str, torch.Tensor]) -> list[Fit]:
    """Every torchvision signature the state_dict fits exactly."""
    shapes = _shapes(state)
    keyset = frozenset(shapes)
    return [f for s in signatures(shapes) if frozenset(s.keys) == keyset and (f := fit(s, shapes)).ok]


def load_torchvision(state: Mapping[str, torch.Tensor], arch: str | None = None) -> ForeignModel:
    """The torchvision model whose keys and shapes the state_dict has, with its weights loaded
    strictly (in eval mode), and its spec ``{arch, num_classes, in_channels, source, kwargs}``.

    Several fits raise ``AmbiguousArchitecture``; ``arch`` (a builder name, optionally prefixed
    ``torchvision:``; ``timm:NAME`` goes to timm) chooses. Nothing fitting is an ``NNGeoError``
    naming what the state_dict holds and the closest builders with why they do not fit."""
    if not state:
        raise NNGeoError("the state_dict is empty")
    if arch is not None and arch.startswith(TIMM_PREFIX):
        return load_timm(state, arch)
    if arch is not None:
        return _load_named(state, arch.removeprefix(TORCHVISION_PREFIX))
    found = matches(state)
    if len(found) > 1:
        raise AmbiguousArchitecture("the weights", [f.signature.id for f in found])
    if found:
        return _load_fitting(found[0], state)
    raise _unrecognised(state)


def _load_named(state: Mapping[str, torch.Tensor], name: str) -> ForeignModel:
    names = builder_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=4, cutoff=0.5) or names[:4]
        raise NNGeoError(
            f"no torchvision classification architecture named {name!r} (e.g. {', '.join(close)}); "
            f"timm models are named timm:NAME"
        )
    shapes = _shapes(state)
    fits = [fit(s, shapes) for s in _signatures_named(name)]
    good = [f for f in fits if f.ok]
    if good:
        return _load_fitting(good[0], state)
    best = min(fits, key=lambda f: f.distance)
    raise NNGeoError(fit_line(f"the weights do not fit torchvision's {best.why_not()}"))


def _signatures_named(name: str) -> list[Signature]:
    fams = families()
    fam = family_of(name)
    with _LOCK:
        idx = _index()
        if _ensure_family(idx, fams, fam):
            idx.save()
        return [s for s in idx.entries[fam] if s.name == name]


def closest(state: Mapping[str, torch.Tensor]) -> list[Fit]:
    """How the builders of the families most like the state_dict (by top-level names) fit it,
    closest first (none when no family shares a top-level name)."""
    shapes = _shapes(state)
    return sorted((fit(s, shapes) for s in _related_signatures(shapes)), key=lambda f: f.distance)


def _unrecognised(state: Mapping[str, torch.Tensor]) -> NNGeoError:
    shapes = _shapes(state)
    found = describe_state(state)
    related = closest(state)
    if not related:
        top = ", ".join(sorted(_top_level(shapes))[:6])
        return NNGeoError(
            fit_line(
                f"unrecognised architecture: the state_dict holds {found}; no torchvision architecture "
                f"has top-level layers named like these ({top})"
            )
        )
    near = "; ".join(f.why_not() for f in related[:SHOWN_CANDIDATES])
    return NNGeoError(
        fit_line(f"unrecognised architecture: the state_dict holds {found}; closest torchvision builders: {near}")
    )


# -- timm, by name only --------------------------------------------------------------------------
def timm_module() -> Any:
    """timm, imported on first need; a one-line ``NNGeoError`` when it is not installed."""
    try:
        # lazy: timm is optional (not a dependency; ~1 s over torchvision); only a named timm model needs it
        import timm
    except ImportError:
        raise NNGeoError(
            "timm is not installed (pip install timm); timm models are only built when named (timm:NAME)"
        ) from None
    return timm


def timm_name(arch: str) -> str:
    """``timm:resnet18`` or ``resnet18`` as timm's own name, ``resnet18``."""
    return str(arch).removeprefix(TIMM_PREFIX)


def _timm_create(name: str, **kwargs: Any) -> nn.Module:
    timm = timm_module()
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except Exception as exc:  # timm raises RuntimeError for unknown names, others for bad arguments
        raise NNGeoError(fit_line(f"timm cannot build {name!r} ({one_line(exc, typed=False)})")) from None


def _cfg_key(cfg: Mapping[str, Any], what: str) -> str | None:
    """The layer ``pretrained_cfg[what]`` names (the first, where timm names several)."""
    value = cfg.get(what)
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    return value if isinstance(value, str) and value else None


def load_timm(state: Mapping[str, torch.Tensor], arch: str) -> ForeignModel:
    """A timm model named ``timm:NAME``, its class count and input channels read from the weights
    at the layers timm's own config names (``pretrained_cfg['classifier' / 'first_conv']``), its
    weights loaded strictly. Never downloads anything (``pretrained=False``)."""
    name = timm_name(arch)
    with torch.device("meta"):  # only its config and key layout: no memory, no initialisation
        probe = _timm_create(name)
    cfg = dict(getattr(probe, "pretrained_cfg", None) or {})
    shapes = _shapes(state)
    classifier, first = _cfg_key(cfg, "classifier"), _cfg_key(cfg, "first_conv")
    head = shapes.get(f"{classifier}.weight") if classifier else None
    stem = shapes.get(f"{first}.weight") if first else None
    num_classes = int(head[0]) if head else int(getattr(probe, "num_classes", 1000))
    in_chans = int(stem[1]) if stem and len(stem) > 1 else DEFAULT_CHANNELS
    spec: dict[str, Any] = {
        "arch": f"{TIMM_PREFIX}{name}",
        "num_classes": num_classes,
        "in_channels": in_chans,
        "source": "timm",
        "kwargs": {},
    }
    with torch.random.fork_rng(devices=[]):  # the initialisation is overwritten: the caller's RNG stays
        model = build_timm(spec)
    ref = model.state_dict()
    missing, unexpected = sorted(set(ref) - set(shapes)), sorted(set(shapes) - set(ref))
    differ = [k for k in ref if k in shapes and tuple(ref[k].shape) != shapes[k]]
    if missing or unexpected or differ:
        parts = [f"{len(missing)} keys missing", f"{len(unexpected)} unexpected", f"{len(differ)} shapes differ"]
        if missing or unexpected:
            first_bad = (missing or unexpected)[0]
        else:
            k = differ[0]
            first_bad = f"{k} {shape_text(shapes[k])} vs {shape_text(tuple(ref[k].shape))}"
        raise NNGeoError(fit_line(f"the weights do not fit {arch}: {', '.join(parts)} (first: {first_bad})"))
    strict_load(model, state)
    return ForeignModel(model.eval(), spec)


def build_timm(spec: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised timm model from a timm spec (as ``load_timm`` returns); never pretrained."""
    return _timm_create(
        timm_name(spec["arch"]),
        num_classes=int(spec["num_classes"]),
        in_chans=int(spec.get("in_channels", DEFAULT_CHANNELS)),
        **dict(spec.get("kwargs", {})),
    )


class TimmHead(TorchvisionHead):
    """A timm classifier taken out of its model. A 1x1 conv classifier (DLA's, whose model pools
    without flattening, applies it, then flattens) gets the pooled vector as a 1x1 image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.head, nn.Conv2d) and x.dim() == 2:
            x = x[:, :, None, None]
        return super().forward(x)


def timm_feedforward_parts(model: nn.Module) -> list[nn.Module]:
    """``[body, head]`` of a timm classifier: the head is the layer ``pretrained_cfg['classifier']``
    names (``fc``, ``classifier``, ``head.fc``, ...), replaced in the model by ``nn.Identity``, so the
    body's output is what the classifier reads (the pooled, pre-logit features). ``model`` is changed
    in place."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    classifier = cfg.get("classifier")
    kind = type(model).__name__
    if not isinstance(classifier, str) or not classifier:
        raise NNGeoError(f"timm's {kind} has {classifier or 'no'} classifier layers; only one head splits off")
    try:
        head = model.get_submodule(classifier)
    except AttributeError:
        raise NNGeoError(f"timm's {kind} has no layer {classifier!r} (its config's classifier)") from None
    if not any(True for _ in head.parameters()):
        raise NNGeoError(f"timm's {kind} has no weights at its classifier {classifier!r} (no classes?)")
    parent_path, _, child = classifier.rpartition(".")
    setattr(model.get_submodule(parent_path) if parent_path else model, child, nn.Identity())
    return [TorchvisionBody(model), TimmHead(head, classifier)]
