"""The forward pass of a network as a neuron DAG: which tensors hold the same neurons, and which
weight layers and fixed linear maps join them.

The model runs once (eval mode, no grad) under a ``TorchFunctionMode`` that sees every torch call
on a tensor derived from the input. Each call is one of:

* a **weight layer** (``conv2d``/``linear`` inside an ``nn.Conv2d``/``nn.Linear``): its edges join
  the units of its input to those of its output;
* **the same neurons**: element-wise maps (activations, eval-mode batch norm, dropout, scaling by a
  constant or adding a bias) and reshapes that keep the order of the units (flatten, view) leave
  the units where they are: input and output are one node level;
* a **fixed linear map** (a ``Link``): pooling (max: every cell of the window with weight 1, the
  input that wins changes from input to input; average: weight 1/window, exact at borders, found
  by probing the pool with one-hot maps), gathers (slicing, strided subsampling, zero padding,
  concatenation, permutations, found by running the op on unit indices) and skip connections;
* **an addition of two computed tensors** (a residual block): an operand that no edge has left yet
  (a branch's last conv output) *is* the sum's neurons; an operand already read elsewhere (the
  block's input) joins the sum by identity edges of weight 1 (a subtraction's by weight -1);
* **a gate** (a product with a computed tensor that broadcasts, as in squeeze-excitation): the
  gated tensor's neurons, scaled; the gate's branch ends there, and ``lost`` says so;
* anything else (a product of two computed tensors of one shape, softmax, attention,
  normalisations over units) cannot be drawn as edges: its output is a new level with
  no incoming edges, and ``notes`` names the op and the module it ran in, so the layers it cuts
  off say why.

Chains of fixed maps (subsample, then pad) are composed into one map (coefficients multiply), so
a skip connection is one edge however the code writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import NNGeoError, one_line

_SAME_UNITS = frozenset(
    {
        "relu",
        "relu_",
        "relu6",
        "leaky_relu",
        "leaky_relu_",
        "elu",
        "elu_",
        "selu",
        "selu_",
        "celu",
        "gelu",
        "silu",
        "mish",
        "sigmoid",
        "tanh",
        "hardtanh",
        "hardtanh_",
        "hardswish",
        "hardsigmoid",
        "softplus",
        "softsign",
        "tanhshrink",
        "logsigmoid",
        "erf",
        "sin",
        "cos",
        "exp",
        "abs",
        "neg",
        "__neg__",
        "square",
        "dropout",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alpha_dropout",
        "feature_alpha_dropout",
        "batch_norm",
        "clone",
        "contiguous",
        "detach",
        "to",
        "float",
        "double",
        "half",
        "type",
        "clamp",
        "clamp_",
        "clip",
        "clip_",
        "add",
        "__add__",
        "__radd__",
        "__iadd__",
        "add_",
        "sub",
        "__sub__",
        "__rsub__",
        "__isub__",
        "sub_",
        "mul",
        "__mul__",
        "__rmul__",
        "__imul__",
        "mul_",
        "div",
        "__truediv__",
        "__itruediv__",
        "div_",
        "true_divide",
    }
)
_RESHAPES = frozenset(
    {
        "flatten",
        "view",
        "reshape",
        "squeeze",
        "unsqueeze",
        "view_as",
        "reshape_as",
    }
)
_SUMS = {
    "add": 1.0,
    "__add__": 1.0,
    "__radd__": 1.0,
    "__iadd__": 1.0,
    "add_": 1.0,
    "sub": -1.0,
    "__sub__": -1.0,
    "__isub__": -1.0,
    "sub_": -1.0,
}
_MAX_POOLS = frozenset(
    {
        "max_pool2d",
        "_max_pool2d",
        "max_pool2d_with_indices",
        "adaptive_max_pool2d",
        "_adaptive_max_pool2d",
    }
)
_AVG_POOLS = frozenset(
    {
        "avg_pool2d",
        "adaptive_avg_pool2d",
    }
)
_GATHERS = frozenset(
    {
        "chunk",
        "split",
        "unbind",
        "__getitem__",
        "pad",
        "permute",
        "transpose",
        "narrow",
        "cat",
        "concat",
        "concatenate",
        "channel_shuffle",
        "pixel_shuffle",
        "pixel_unshuffle",
        "flip",
        "roll",
    }
)
_PRODUCTS = frozenset({"mul", "__mul__", "__rmul__", "__imul__", "mul_"})
_WEIGHT_CALLS = frozenset(("conv2d", "linear"))
_PROBE_BUDGET = 1 << 24  # floats per one-hot probe batch


@dataclass
class Link:
    """A fixed linear map between two node levels: ``matrix[dst unit, src unit]`` is the edge's
    coefficient (0: no edge); ``kind`` says what it came from ("identity", "max_pool", ...)."""

    src: int
    dst: int
    matrix: sp.csr_matrix
    kind: str
    where: str


@dataclass
class LayerCall:
    name: str
    src: int
    dst: int


@dataclass
class Trace:
    """The neuron DAG of one forward pass. Levels are numbered in topological order."""

    level_size: list[int]
    level_shape: list[tuple[int, ...]]  # (C, H, W) where the level was ever an image, else (n,)
    layers: list[LayerCall]  # weight layers in forward order
    links: list[Link]
    cut: dict[int, str]  # level -> why it has no incoming edges although computed from the input
    lost: dict[int, str]  # level -> an op that reads it and is not drawn (its edges there are missing)
    input_level: int
    output_level: int
    values: dict[int, torch.Tensor] = field(default_factory=dict)  # level -> (N, units), when asked


def _name(func) -> str:
    return str(getattr(func, "__name__", func))


def _tensors(obj) -> Iterable[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


class _Recorder(TorchFunctionMode):
    def __init__(self, prunable: dict[nn.Module, str], keep_values: bool):
        super().__init__()
        self.prunable = prunable
        self.keep_values = keep_values
        self.stack: list[nn.Module] = []
        self.node_of: dict[int, int] = {}  # id(tensor) -> its current node
        self.alive: list[torch.Tensor] = []  # every tracked tensor, so no id is reused
        self.parent: list[int] = []
        self.shape: list[tuple[int, ...]] = []
        self.closed: set[int] = set()  # classes some edge has left
        self.layers: list[LayerCall] = []
        self.links: list[tuple[int, int, sp.csr_matrix, str, str]] = []
        self.cut: dict[int, str] = {}
        self.lost: dict[int, str] = {}  # node -> the op that reads it and is not drawn
        self.value: dict[int, tuple[int, torch.Tensor]] = {}  # class root -> (node, latest values)
        self.called: set[str] = set()

    # ---- union-find over nodes
    def find(self, n: int) -> int:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        lo, hi = min(ra, rb), max(ra, rb)
        self.parent[hi] = lo
        if hi in self.closed:
            self.closed.add(lo)
        if hi in self.value:  # keep the values written last (higher node number)
            moved = self.value.pop(hi)
            if lo not in self.value or moved[0] > self.value[lo][0]:
                self.value[lo] = moved

    def new_node(self, t: torch.Tensor) -> int:
        n = len(self.parent)
        self.parent.append(n)
        self.shape.append(tuple(int(s) for s in t.shape[1:]))
        self.node_of[id(t)] = n
        self.alive.append(t)
        return n

    def note_value(self, n: int, t: torch.Tensor) -> None:
        if self.keep_values:
            self.value[self.find(n)] = (n, t.detach().reshape(len(t), -1).clone())

    def enter(self, mod, inputs) -> None:
        self.stack.append(mod)

    def leave(self, mod, inputs, output) -> None:
        self.stack.pop()

    def where(self) -> str:
        for mod in reversed(self.stack):
            name = getattr(mod, "_nngeo_trace_name", "")
            if name:
                return name
        return "the model's forward"

    # ---- the mode
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        ins = [t for t in _tensors((args, kwargs)) if id(t) in self.node_of]
        if not ins:
            return out  # parameters, constants, shapes: not the network's neurons
        outs = list(_tensors(out))
        if not outs or not out_is_float(outs):
            return out  # dim(), size(), argmax: no neurons
        self.record(_name(func), func, args, kwargs, ins, outs)
        return out

    def record(self, name, func, args, kwargs, ins, outs) -> None:
        srcs = [self.node_of[id(t)] for t in ins]
        first = ins[0]
        out = outs[0]
        mod = self.stack[-1] if self.stack else None
        if name in _WEIGHT_CALLS and mod in self.prunable and len(outs) == 1:
            layer = self.prunable[mod]
            if layer in self.called:
                raise NNGeoError(
                    f"layer {layer} runs twice in the forward pass (shared weights): the neuron graph "
                    "needs each weight layer once"
                )
            self.called.add(layer)
            n = self.new_node(out)
            self.layers.append(LayerCall(layer, srcs[0], n))
            self.closed.add(self.find(srcs[0]))
            self.note_value(n, out)
            return
        uniq = list(dict.fromkeys(self.find(s) for s in srcs))
        same = (name in _SAME_UNITS and tuple(out.shape) == tuple(first.shape)) or (
            name in _RESHAPES and out.shape[0] == first.shape[0] and out[0].numel() == first[0].numel()
        )
        if len(outs) == 1 and len(uniq) == 1 and same:
            n = self.new_node(out)
            self.union(n, srcs[0])
            self.note_value(n, out)
            return
        if name in _SUMS and len(outs) == 1 and len(ins) == 2 and tuple(ins[0].shape) == tuple(ins[1].shape):
            n = self.new_node(out)
            for operand, sign in ((srcs[0], 1.0), (srcs[1], _SUMS[name])):
                root = self.find(operand)
                if root not in self.closed and self.find(n) != root:
                    self.union(n, operand)
                elif self.find(n) != root:
                    size = int(np.prod(self.shape[operand]))
                    self.link(operand, n, sp.identity(size, format="csr") * sign, "identity")
            self.note_value(n, out)
            return
        if name in _PRODUCTS and len(outs) == 1 and len(ins) == 2 and len(uniq) == 2:
            shapes = [tuple(t.shape) for t in ins]
            if shapes[0] != shapes[1] and tuple(out.shape) in shapes:
                # a gate (squeeze-excitation): the gated tensor's neurons, scaled per channel by a
                # computed factor; the gate's own branch ends here
                big = shapes.index(tuple(out.shape))
                n = self.new_node(out)
                self.union(n, srcs[big])
                gate = srcs[1 - big]
                self.closed.add(self.find(gate))
                self.lost.setdefault(gate, f"the `{name}` gate in {self.where()}")
                self.note_value(n, out)
                return
        if len(outs) == 1 and name == "mean" and first.ndim == 4 and _spatial_mean(args, kwargs):
            matrix = _pool_matrix(func, args, kwargs, first, out.reshape(len(out), -1, 1, 1), maximum=False)
            if matrix is not None:
                n = self.new_node(out)
                self.link(srcs[0], n, matrix, "avg_pool")
                self.note_value(n, out)
                return
        if len(outs) == 1 and name in _MAX_POOLS | _AVG_POOLS and first.ndim == 4 and out.ndim == 4:
            matrix = _pool_matrix(func, args, kwargs, first, out, maximum=name in _MAX_POOLS)
            if matrix is not None:
                n = self.new_node(out)
                self.link(srcs[0], n, matrix, "max_pool" if name in _MAX_POOLS else "avg_pool")
                self.note_value(n, out)
                return
        if name in _GATHERS and _zero_fill(name, args, kwargs):
            maps = _gather_maps(func, args, kwargs, ins, outs)
            if maps is not None:
                for k, o in enumerate(outs):
                    n = self.new_node(o)
                    for src, matrix in zip(srcs, maps[k], strict=False):
                        if matrix is not None and matrix.nnz:
                            self.link(src, n, matrix, "gather")
                    self.note_value(n, o)
                return
        why = f"`{name}` in {self.where()}"
        for s in srcs:
            self.closed.add(self.find(s))
            self.lost.setdefault(s, why)
        for o in outs:
            n = self.new_node(o)
            self.cut[n] = why
            self.note_value(n, o)

    def link(self, src: int, dst: int, matrix: sp.csr_matrix, kind: str) -> None:
        self.closed.add(self.find(src))
        self.links.append((src, dst, sp.csr_matrix(matrix), kind, self.where()))


def _spatial_mean(args, kwargs) -> bool:
    """``x.mean((2, 3))`` (or (-2, -1)), with or without keepdim: global average pooling."""
    dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
    if dims is None:
        return False
    dims = {int(d) % 4 for d in (dims if isinstance(dims, (tuple, list)) else [dims])}
    return dims == {2, 3}


def _zero_fill(name: str, args, kwargs) -> bool:
    """A pad writes zeros only in constant mode with value 0 (other fills would read as indices)."""
    if name != "pad":
        return True
    mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
    value = kwargs.get("value", args[3] if len(args) > 3 else None)
    return mode == "constant" and (value is None or float(value) == 0.0)


def out_is_float(outs: list[torch.Tensor]) -> bool:
    return all(o.is_floating_point() and o.ndim >= 2 for o in outs)


def _pool_matrix(func, args, kwargs, x: torch.Tensor, out: torch.Tensor, *, maximum: bool) -> sp.csr_matrix | None:
    """The pool as a (C*oh*ow, C*H*W) matrix, found by pooling one-hot maps of one channel (pools act
    on each channel alike): the average's exact coefficients, or 1 on every cell of a max's window."""
    c, h, w = (int(s) for s in x.shape[1:])
    oc, oh, ow = (int(s) for s in out.shape[1:])
    if oc != c:
        return None
    hw = h * w
    rows, cols, vals = [], [], []
    step = max(1, _PROBE_BUDGET // max(hw, 1))
    for lo in range(0, hw, step):
        hi = min(hw, lo + step)
        probe = torch.zeros((hi - lo, 1, h, w), dtype=torch.float64)
        probe.view(hi - lo, hw)[torch.arange(hi - lo), torch.arange(lo, hi)] = 1.0
        try:
            res = func(probe, *args[1:], **kwargs)
        except Exception:  # noqa: BLE001 - an unusual pool signature: not modelled, noted by the caller
            return None
        res = res[0] if isinstance(res, tuple) else res
        cells = res.reshape(hi - lo, oh * ow).numpy()  # a mean over (2, 3) gives (n, 1): oh = ow = 1
        src, dst = np.nonzero(cells > 0)
        rows.append(dst)
        cols.append(src + lo)
        vals.append(np.ones(len(src)) if maximum else cells[src, dst])
    spatial = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(oh * ow, hw))
    return sp.kron(sp.identity(c, format="csr"), spatial, format="csr")


def _gather_maps(func, args, kwargs, ins, outs) -> list[list[sp.csr_matrix | None]] | None:
    """For an op that only moves units (or writes zeros), each output's map from each input: the op
    runs on tensors holding each unit's index (offset per input, 0 = a written constant)."""
    offset = 1
    index_of: dict[int, tuple[torch.Tensor, int, int]] = {}
    for t in ins:
        n = t[0].numel()
        index_of[id(t)] = (
            torch.arange(offset, offset + n, dtype=torch.float64).reshape(1, *t.shape[1:]).expand(t.shape),
            offset,
            n,
        )
        offset += n
    if offset > 2**52:
        return None

    def swap(obj):
        if isinstance(obj, torch.Tensor) and id(obj) in index_of:
            return index_of[id(obj)][0]
        if isinstance(obj, (list, tuple)):
            return type(obj)(swap(o) for o in obj)
        return obj

    try:
        res = func(*swap(args), **{k: swap(v) for k, v in kwargs.items()})
    except Exception:  # noqa: BLE001 - the op did not accept index tensors: not a pure gather
        return None
    res_list = list(_tensors(res))
    if len(res_list) != len(outs):
        return None
    maps = []
    for r, o in zip(res_list, outs, strict=False):
        if tuple(r.shape) != tuple(o.shape):
            return None
        flat = r[0].reshape(-1).numpy()
        if not np.all(flat == np.round(flat)) or (len(r) > 1 and not torch.equal(r, r[:1].expand_as(r))):
            return None
        per_input = []
        for t in ins:
            _, lo, n = index_of[id(t)]
            hit = (flat >= lo) & (flat < lo + n)
            dst = np.flatnonzero(hit)
            src = (flat[hit] - lo).astype(np.int64)
            per_input.append(sp.csr_matrix((np.ones(len(dst)), (dst, src)), shape=(len(flat), n)))
        maps.append(per_input)
    return maps


def trace_network(
    model: nn.Module, x: torch.Tensor, *, keep_values: bool = False, prunable: Callable | None = None
) -> Trace:
    """Record ``model``'s forward pass on ``x`` (N, *input shape) as a neuron DAG (see the module
    docstring); with ``keep_values`` the activations of every level on ``x`` as well."""
    is_layer = prunable or (lambda m: isinstance(m, (nn.Linear, nn.Conv2d)))
    names = {m: n for n, m in model.named_modules() if is_layer(m)}
    rec = _Recorder(names, keep_values)
    handles = []
    for n, m in model.named_modules():
        m._nngeo_trace_name = n  # read back by _Recorder.where, removed below
        handles.append(m.register_forward_pre_hook(rec.enter))
        handles.append(m.register_forward_hook(rec.leave))
    was = model.training
    model.eval()
    x = x.detach()
    try:
        root = rec.new_node(x)
        rec.note_value(root, x)
        with torch.no_grad(), rec:
            y = model(x)
    except NNGeoError:
        raise
    except Exception as exc:
        raise NNGeoError(f"the network's forward pass failed while tracing it: {one_line(exc, typed=False)}") from None
    finally:
        model.train(was)
        for h in handles:
            h.remove()
        for _, m in model.named_modules():
            m.__dict__.pop("_nngeo_trace_name", None)
    if not isinstance(y, torch.Tensor) or id(y) not in rec.node_of:
        raise NNGeoError("the network's output is not a tensor computed from its input")
    return _levels(rec, root, rec.node_of[id(y)])


def _levels(rec: _Recorder, input_node: int, output_node: int) -> Trace:
    classes: dict[int, list[int]] = {}
    for n in range(len(rec.parent)):
        classes.setdefault(rec.find(n), []).append(n)
    used = {rec.find(input_node), rec.find(output_node)}
    used |= {rec.find(c.src) for c in rec.layers} | {rec.find(c.dst) for c in rec.layers}
    used |= {rec.find(s) for s, *_ in rec.links} | {rec.find(d) for _, d, *_ in rec.links}
    # links between the same two classes add up (x + x); chains of links through a level no weight
    # layer touches are composed (coefficients multiply), so a skip is one edge
    summed: dict[tuple[int, int], list] = {}
    for s, d, matrix, kind, where in rec.links:
        key = (rec.find(s), rec.find(d))
        if key in summed:
            summed[key][0] = summed[key][0] + matrix
        else:
            summed[key] = [matrix, kind, where]
    touched = {rec.find(c.src) for c in rec.layers} | {rec.find(c.dst) for c in rec.layers}
    touched |= {rec.find(input_node), rec.find(output_node)} | {rec.find(c) for c in rec.cut}
    changed = True
    while changed:
        changed = False
        for mid in list(used - touched):
            ins = [k for k in summed if k[1] == mid]
            outs = [k for k in summed if k[0] == mid]
            if len(ins) == 1 and len(outs) == 1 and ins[0][0] != outs[0][1]:
                (a, _), (_, b) = ins[0], outs[0]
                first, second = summed.pop(ins[0]), summed.pop(outs[0])
                matrix = sp.csr_matrix(second[0] @ first[0])
                kind = first[1] if first[1] == second[1] else f"{first[1]}+{second[1]}"
                key = (a, b)
                if key in summed:
                    summed[key][0] = summed[key][0] + matrix
                else:
                    summed[key] = [matrix, kind, first[2]]
                used.discard(mid)
                changed = True
                break
    # topological numbering of the classes that remain
    succ: dict[int, set[int]] = {c: set() for c in used}
    for call in rec.layers:
        succ[rec.find(call.src)].add(rec.find(call.dst))
    for s, d in summed:
        succ[s].add(d)
    indeg = {c: 0 for c in used}
    for c in used:
        for d in succ[c]:
            indeg[d] += 1
    order: list[int] = []
    ready = sorted(c for c in used if indeg[c] == 0)
    while ready:
        c = ready.pop(0)
        order.append(c)
        for d in sorted(succ[c]):
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
        ready.sort()
    if len(order) != len(used):
        raise NNGeoError("the network's neuron graph has a cycle; it cannot be analysed as a feed-forward graph")
    level = {c: i for i, c in enumerate(order)}
    sizes: list[int] = []
    shapes: list[tuple[int, ...]] = []
    for c in order:
        node_shapes = [rec.shape[n] for n in classes[c]]
        sizes.append(int(np.prod(node_shapes[0])))
        shapes.append(next((s for s in node_shapes if len(s) == 3), (sizes[-1],)))
    links = [Link(level[s], level[d], sp.csr_matrix(m), kind, where) for (s, d), (m, kind, where) in summed.items()]
    layers = [LayerCall(c.name, level[rec.find(c.src)], level[rec.find(c.dst)]) for c in rec.layers]
    cut = {level[rec.find(n)]: why for n, why in rec.cut.items() if rec.find(n) in level}
    lost = {level[rec.find(n)]: why for n, why in rec.lost.items() if rec.find(n) in level}
    values = {level[c]: v for c, (_, v) in rec.value.items() if c in level}
    return Trace(
        sizes, shapes, layers, links, cut, lost, level[rec.find(input_node)], level[rec.find(output_node)], values
    )
