"""Batched optimal transport for Ollivier-Ricci curvature.

Every curvature problem here has the same shape: the source measure lives on a set of "core"
points plus one extra point (the edge's source node), the target measure on another core set plus
one extra point (the edge's target node). Edges whose neighbourhoods are the same sets share the
core cost matrix; only the masses, one cost row (extra source -> core targets), one cost column
(core sources -> extra target) and one corner cost differ. ``CoreProblems`` holds a batch of such
problems; the solvers exploit the shared core:

- ``w1_exact``: exact W1 per problem with POT's network simplex (``emd_c``), zero-mass points
  dropped first, closed forms when one side is a single point; ``w1_exact_parallel`` spreads
  chunks of problems over worker processes (``map_indexed``).
- ``w1_sinkhorn``: entropic OT in torch (float64, CPU or CUDA), cache-sized batches of problems at
  once, torch's threads each taking whole batches (see ``SINKHORN_THREAD_BYTES``). The
  iterations run in the kernel domain, not the log domain, because the shared core kernel then
  turns each half-iteration into one GEMM (``K @ V`` for all problems of a batch); the kernel
  exponent is capped at -600 so nothing underflows, and the potentials are carried in the log
  domain from one epsilon stage to the next. Problems that end far from their marginals or go
  non-finite are re-solved exactly, so the result is always finite.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import NNGeoError

# network simplex iteration cap per problem (POT's default 1e5 can be short for 500x500 supports)
EMD_MAX_ITER = 10_000_000
# entropic regularisation relative to the median finite core cost (minus the smallest cost), and
# the stopping rule: L1 error of the source marginal, iteration cap of the last epsilon stage.
# Measured on K(100,100) with lengths 1/|w|: curvature within 7e-3 of exact (mean 1e-3).
SINKHORN_EPS = 0.01
SINKHORN_TOL = 1e-3
SINKHORN_MAX_ITER = 100
SINKHORN_STAGE_ITER = 20  # iterations of each coarser epsilon stage (warm start only)
# the coarsest epsilon stage, as a multiple of the final epsilon (and at most the cost spread / 20).
# Scaling down from spread / 20 wasted most iterations where lengths 1/|w| span decades: measured,
# fcn_mnist on 2 inputs, 8 stages from spread / 20: 2.06 M problem-iterations; from 8x the final
# epsilon (3 stages) 1.02 M, curvature as close to exact (max 4.1e-2, mean 4.3e-4); K(100,100)
# unchanged (1.23 M, its spread is small). 4x (2 stages) left some problems at the iteration cap.
SINKHORN_EPS0_RATIO = 8.0
SINKHORN_ACCEPT = 5e-2  # marginal error above which a problem is re-solved exactly
EXACT_BELOW = 400  # in sinkhorn mode, problems with at most this many support pairs are solved exactly
# Sinkhorn batches and threads. The problems are independent, so batching trades per-op overhead
# (~10 torch ops per half-iteration, each with a fixed dispatch cost) against memory traffic: one
# half-iteration streams about SINKHORN_HOT_ARRAYS float64 vectors per problem and side (masses,
# scalings, the extra point's kernel row/column, the GEMM product and temporaries). A batch whose
# vectors fit in a few MB (2 MB L2 + a slice of L3 per core on the dev box) runs its ops from
# cache instead of DRAM; measured on K(100,100), 1 thread: batches of 256-1024 problems 2.1-2.5 s
# against 3.0 s for one 10 000-problem batch, so 8 MiB (~750 problems there) sits mid-plateau.
# Threads run whole batches side by side (one intra-op thread each, torch releases the GIL in its
# ops) rather than splitting every op: torch's intra-op threads meet at a barrier after every op,
# and on a busy machine each barrier waits for a descheduled thread. Measured, K(100,100), 2 torch
# threads, load 5-7 on 2 cores (other jobs): cache-sized batches split op by op 28 s, one big batch
# split op by op 1.9-16 s, batches side by side 1.6-3.2 s; 1 thread 2.9-4.0 s.
SINKHORN_THREAD_BYTES = 8 * 2**20
SINKHORN_HOT_ARRAYS = 7
# one batch split by torch's threads: below this many core kernel entries x problems one thread is
# faster (the hand-offs cost more than the arithmetic); measured on one 100-wide layer: 5.0 -> 2.9 s
SINGLE_THREAD_WORK = 1e7
SINKHORN_POLL_S = 0.1  # how often the caller's cancel check runs while threads solve batches
# exponent cap for the Gibbs kernel: exp(-600) ~ 1e-261 keeps every kernel entry positive in float64
_EXP_CAP = 600.0


@dataclass
class CoreProblems:
    """B transport problems sharing a core cost matrix (see the module docstring).

    ``C`` (n1, n2) core cost; ``a`` (n1, B) core source masses; ``b`` (n2, B) core target masses;
    ``ax``/``by`` (B,) masses of the extra source/target point; ``row`` (n2, B) cost from the extra
    source to the core targets; ``col`` (n1, B) cost from the core sources to the extra target;
    ``corner`` (B,) cost between the two extra points. Each problem's source and target masses
    have the same total. Costs may be +inf where no path exists, as long as a finite plan exists.
    """

    C: np.ndarray
    a: np.ndarray
    b: np.ndarray
    ax: np.ndarray
    by: np.ndarray
    row: np.ndarray
    col: np.ndarray
    corner: np.ndarray

    @property
    def size(self) -> int:
        return int(self.ax.shape[0])

    def subset(self, idx: np.ndarray) -> CoreProblems:
        return CoreProblems(
            self.C,
            self.a[:, idx],
            self.b[:, idx],
            self.ax[idx],
            self.by[idx],
            self.row[:, idx],
            self.col[:, idx],
            self.corner[idx],
        )

    def compact(self) -> CoreProblems:
        """Drop core points that carry no mass in any problem of the batch (they change nothing)."""
        keep_r = np.flatnonzero((self.a > 0).any(axis=1))
        keep_c = np.flatnonzero((self.b > 0).any(axis=1))
        if len(keep_r) == self.a.shape[0] and len(keep_c) == self.b.shape[0]:
            return self
        return CoreProblems(
            self.C[np.ix_(keep_r, keep_c)],
            self.a[keep_r],
            self.b[keep_c],
            self.ax,
            self.by,
            self.row[keep_c],
            self.col[keep_r],
            self.corner,
        )


# ----------------------------------------------------------------------------------------------
# closed forms


def _point_masses(p: CoreProblems) -> tuple[np.ndarray, np.ndarray]:
    """Which problems have a single-point source / target (a Dirac measure)."""
    src_single = ((p.a > 0).sum(axis=0) + (p.ax > 0)) == 1
    dst_single = ((p.b > 0).sum(axis=0) + (p.by > 0)) == 1
    return src_single, dst_single


def _safe_mul(mass: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """mass * cost with 0 * inf = 0 (no mass travels on a missing path)."""
    out = mass * np.where(mass > 0, cost, 0.0)
    return out


def w1_closed_form(p: CoreProblems) -> tuple[np.ndarray, np.ndarray]:
    """W1 where one side is a single point: every unit of mass travels straight there.

    Returns (values, solved mask); values are NaN where neither side is a single point.
    """
    src_single, dst_single = _point_masses(p)
    out = np.full(p.size, np.nan)
    s = np.flatnonzero(src_single)
    if len(s):  # source is one point: the extra source, or one core source
        sub = p.subset(s)
        cols = np.arange(len(s))
        value = _safe_mul(sub.b, sub.row).sum(axis=0) + _safe_mul(sub.by, sub.corner)  # from the extra point
        if sub.a.shape[0]:
            i = np.argmax(sub.a > 0, axis=0)
            from_core = _safe_mul(sub.b, sub.C[i].T).sum(axis=0) + _safe_mul(sub.by, sub.col[i, cols])
            value = np.where(sub.ax > 0, value, from_core)
        out[s] = value
    d = np.flatnonzero(dst_single & ~src_single)
    if len(d):  # target is one point
        sub = p.subset(d)
        cols = np.arange(len(d))
        value = _safe_mul(sub.a, sub.col).sum(axis=0) + _safe_mul(sub.ax, sub.corner)  # to the extra point
        if sub.b.shape[0]:
            j = np.argmax(sub.b > 0, axis=0)
            to_core = _safe_mul(sub.a, sub.C[:, j]).sum(axis=0) + _safe_mul(sub.ax, sub.row[j, cols])
            value = np.where(sub.by > 0, value, to_core)
        out[d] = value
    return out, src_single | dst_single


# ----------------------------------------------------------------------------------------------
# exact


def _emd_cost(a: np.ndarray, b: np.ndarray, M: np.ndarray) -> float:
    # lazy: POT adds 0.4-0.8 s (measured) to every import of nngeo_core.curvature; only exact solves use it
    from ot.lp.emd_wrap import emd_c

    b = b * (a.sum() / b.sum())  # equal totals to the last bit, as the solver requires
    _, cost, _, _, code = emd_c(a, b, np.ascontiguousarray(M), EMD_MAX_ITER, 1, None, None)
    if code != 1:  # 1 = optimal; anything else means the LP did not finish
        raise NNGeoError(
            f"the exact transport solver stopped early (code {code}); "
            "the cost matrix is probably not finite where mass must travel"
        )
    return float(cost)


def w1_exact(p: CoreProblems, check: Callable[[], None] | None = None) -> np.ndarray:
    """Exact W1 of every problem (network simplex per problem, closed forms where possible)."""
    out, solved = w1_closed_form(p)
    rest = np.flatnonzero(~solved)
    if not len(rest):
        return out
    finite_max = _finite_max(p)
    big = 1e3 * (finite_max + 1.0)  # stands in for +inf: never chosen when a finite plan exists
    Cb = np.where(np.isfinite(p.C), p.C, big)
    for n, e in enumerate(rest):
        if check is not None and n % 256 == 0:
            check()
        rows = np.flatnonzero(p.a[:, e] > 0)
        cols = np.flatnonzero(p.b[:, e] > 0)
        has_x, has_y = p.ax[e] > 0, p.by[e] > 0
        M = np.empty((len(rows) + has_x, len(cols) + has_y))
        M[: len(rows), : len(cols)] = Cb[np.ix_(rows, cols)]
        if has_y:
            M[: len(rows), -1] = p.col[rows, e]
        if has_x:
            M[-1, : len(cols)] = p.row[cols, e]
        if has_x and has_y:
            M[-1, -1] = p.corner[e]
        M[~np.isfinite(M)] = big
        a = np.concatenate([p.a[rows, e], [p.ax[e]] if has_x else []])
        b = np.concatenate([p.b[cols, e], [p.by[e]] if has_y else []])
        out[e] = _emd_cost(a, b, M)
    if np.any(out >= big):
        raise NNGeoError(
            "some mass has no finite path to travel along; the graph is not connected where the curvature needs it"
        )
    return out


def _finite_max(p: CoreProblems) -> float:
    vals = [x[np.isfinite(x)] for x in (p.C, p.row, p.col, p.corner)]
    vals = [v.max() for v in vals if v.size]
    return float(max(vals)) if vals else 0.0


def _exact_worker(p: CoreProblems) -> np.ndarray:
    return w1_exact(p)


def default_processes() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class _Indexed:
    """Picklable wrapper: runs fn on (index, chunk) and returns (index, result)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, item):
        i, c = item
        return i, self.fn(c)


def map_indexed(
    fn: Callable, chunks: Sequence, processes: int | None = None, on_result: Callable[[int, object], None] | None = None
) -> list:
    """``[fn(c) for c in chunks]``, in worker processes when more than one is asked for and useful.

    Uses the ``fork`` start method (as GraphRicciCurvature does) where the platform has it, so the
    workers start in milliseconds; elsewhere the chunks run in this process. ``on_result(i, value)``
    runs in the parent as each chunk finishes (progress and cancel live there). Results keep the
    order of ``chunks``.
    """
    processes = default_processes() if processes is None else int(processes)
    results: list = [None] * len(chunks)
    can_fork = sys.platform != "win32" and "fork" in mp.get_all_start_methods()
    if processes <= 1 or len(chunks) <= 1 or not can_fork:
        for i, c in enumerate(chunks):
            results[i] = fn(c)
            if on_result is not None:
                on_result(i, results[i])
        return results
    ctx = mp.get_context("fork")
    pool = ctx.Pool(processes=min(processes, len(chunks)))
    try:
        for i, value in pool.imap_unordered(_Indexed(fn), list(enumerate(chunks))):
            results[i] = value
            if on_result is not None:
                on_result(i, value)
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    return results


def split_work(p: CoreProblems, parts: int) -> list[CoreProblems]:
    idx = np.array_split(np.arange(p.size), max(1, min(parts, p.size)))
    return [p.subset(i) for i in idx if len(i)]


def w1_exact_parallel(
    p: CoreProblems, processes: int | None = None, check: Callable[[], None] | None = None
) -> np.ndarray:
    """``w1_exact`` with the problems split over worker processes when that pays off."""
    processes = default_processes() if processes is None else int(processes)
    n1, n2 = p.C.shape
    # below ~0.3 s of work the process start-up costs more than it saves
    work = p.size * (n1 + 1) * (n2 + 1)
    if processes <= 1 or work < 3e6:
        return w1_exact(p, check)
    chunks = split_work(p, 4 * processes)

    def on_result(i, value):
        if check is not None:
            check()

    values = map_indexed(_exact_worker, chunks, processes, on_result)
    return np.concatenate(values)


# ----------------------------------------------------------------------------------------------
# entropic (Sinkhorn), batched in torch


def w1_sinkhorn(
    p: CoreProblems,
    *,
    eps: float = SINKHORN_EPS,
    tol: float = SINKHORN_TOL,
    max_iter: int = SINKHORN_MAX_ITER,
    device: str = "cpu",
    dtype=None,
    check: Callable[[], None] | None = None,
    fallback: bool = True,
    batch: int | None = None,
) -> np.ndarray:
    """Transport cost of the entropic plan of every problem, a batch of problems at a time.

    ``eps`` is relative to the median finite core cost (after subtracting the smallest cost).
    Epsilon scaling runs from a coarse regularisation down to ``eps``; in each stage a problem
    stops iterating once the L1 error of its source marginal is below ``tol`` (1e-3 in the early
    stages), so the batch shrinks as problems converge. The problems run in batches of ``batch``
    (None: ``sinkhorn_batch_size`` on the CPU, fewer when that leaves a thread idle; all at once on
    an accelerator), on the CPU ``torch.get_num_threads()`` batches side by side; every batch uses
    the same epsilon schedule, so the values depend on neither the batch size nor the threads
    beyond float rounding. The value returned is <C, P> of the final
    plan (transport cost without the entropy term), at or slightly above the exact W1. Problems
    that do not converge within ``max_iter`` iterations or go non-finite are re-solved exactly
    when ``fallback`` (else NaN).
    """
    dtype = dtype or torch.float64
    out, solved = w1_closed_form(p)
    rest = np.flatnonzero(~solved)
    if not len(rest):
        return out
    q = p.subset(rest).compact()
    n1, n2 = q.C.shape
    if n1 == 0 or n2 == 0:  # all mass of one side sits on the extra point: tiny exact problems
        out[rest] = w1_exact(q)
        return out
    finite = np.concatenate([x[np.isfinite(x)].ravel() for x in (q.C, q.row, q.col, q.corner)])
    cmin = float(finite.min())
    core_finite = q.C[np.isfinite(q.C)]
    scale = float(np.median(core_finite if core_finite.size else finite)) - cmin
    if not scale > 0:
        scale = max(float(finite.max()) - cmin, 1e-12)
    eps_final = eps * scale
    spread = float(finite.max()) - cmin

    before = torch.get_num_threads()  # the caller's policy (the worker sets cores // consumers)
    threads = before if device == "cpu" else 1
    if batch is not None:
        size = max(1, int(batch))
    elif device == "cpu":  # cache-sized, and small enough that every thread gets a batch
        size = min(sinkhorn_batch_size(n1, n2), -(-q.size // threads))
    else:  # an accelerator wants every problem in one launch
        size = q.size
    starts = list(range(0, q.size, size))

    def solve_batch(lo: int, check_batch: Callable[[], None] | None) -> tuple[np.ndarray, np.ndarray]:
        # the problems are independent and every batch gets the same epsilon schedule, so the
        # batch size changes the timing only, never the values (beyond float rounding)
        sub = q.subset(np.arange(lo, min(q.size, lo + size))).compact()
        # per thread (it is the thread's FPU mode): subnormal products slow CPU arithmetic down 100x
        torch.set_flush_denormal(True)
        try:
            return _sinkhorn_batch(
                sub, eps_final, spread, cmin, tol, max_iter, torch.device(device), dtype, check_batch
            )
        finally:
            torch.set_flush_denormal(False)

    workers = min(threads, len(starts))
    # several batches: one intra-op thread each, batches side by side; one batch (a GPU, or
    # ``batch`` forcing it): torch's threads split its ops, which pays only for big batches
    if device == "cpu" and (workers > 1 or n1 * n2 * min(size, q.size) < SINGLE_THREAD_WORK):
        torch.set_num_threads(1)
    try:
        if workers <= 1:
            parts = [solve_batch(lo, check) for lo in starts]
        else:
            parts = _run_threaded(solve_batch, starts, workers, check)
    finally:
        torch.set_num_threads(before)
    values = np.concatenate([v for v, _ in parts])
    ok = np.concatenate([k for _, k in parts])
    if not ok.all():
        bad = np.flatnonzero(~ok)
        values[bad] = w1_exact(q.subset(bad)) if fallback else np.nan
    out[rest] = values
    return out


def sinkhorn_batch_size(n1: int, n2: int) -> int:
    """Problems per Sinkhorn batch on the CPU: ``SINKHORN_THREAD_BYTES`` of hot vectors (see there)."""
    return max(1, SINKHORN_THREAD_BYTES // (8 * SINKHORN_HOT_ARRAYS * (n1 + n2)))


class _Stopped(Exception):
    """Tells the other batch threads to stop when one failed or the caller cancelled."""


def _run_threaded(solve_batch, starts: list[int], workers: int, check: Callable[[], None] | None) -> list:
    """``[solve_batch(lo, stop_check) for lo in starts]`` on ``workers`` threads (torch releases the
    GIL inside its ops). The caller's ``check`` runs here, in the calling thread only (it may
    touch objects bound to that thread, e.g. a database connection); the batch threads poll an event."""
    stop = threading.Event()

    def stop_check() -> None:
        if stop.is_set():
            raise _Stopped()

    with ThreadPoolExecutor(workers, thread_name_prefix="sinkhorn") as pool:
        futures = [pool.submit(solve_batch, lo, stop_check) for lo in starts]
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=SINKHORN_POLL_S, return_when=FIRST_EXCEPTION)
                for f in done:
                    f.result()  # a batch's error surfaces here
                if check is not None:
                    check()
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            raise
    return [f.result() for f in futures]


def _sinkhorn_batch(q: CoreProblems, eps_final, spread, cmin, tol, max_iter, dev, dtype, check):
    T = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=dev)  # noqa: E731  (a one-line local converter reads better than a def)
    C = T(q.C)
    B = q.size
    # per-problem tensors, problem index last
    prob = {
        "a": T(q.a),
        "b": T(q.b),
        "ax": T(q.ax),
        "by": T(q.by),
        "row": T(q.row),
        "col": T(q.col),
        "corner": T(q.corner),
    }
    tiny = torch.finfo(dtype).tiny

    def kernel(cost, e):
        # far (and infinite) costs keep a tiny positive weight so no row or column empties out
        return torch.exp(torch.clamp(-(cost - cmin) / e, min=-_EXP_CAP))

    eps0 = max(eps_final, min(spread / 20.0, SINKHORN_EPS0_RATIO * eps_final))
    n_stages = max(1, int(math.ceil(math.log(eps0 / eps_final, 4.0))) + 1)
    stages = np.geomspace(eps0, eps_final, n_stages)
    g = torch.zeros_like(prob["b"])  # target log-potentials, carried from stage to stage
    gy = torch.zeros_like(prob["by"])
    u_all = torch.zeros_like(prob["a"])
    ux_all = torch.zeros_like(prob["ax"])
    v_all = torch.zeros_like(prob["b"])
    vy_all = torch.zeros_like(prob["by"])
    err_all = torch.full((B,), float("inf"), dtype=dtype, device=dev)
    for si, e in enumerate(stages):
        last = si == len(stages) - 1
        stage_tol = tol if last else 1e-2
        stage_iter = max_iter if last else SINKHORN_STAGE_ITER
        K = kernel(C, e)
        KT = K.T.contiguous()
        active = torch.arange(B, device=dev)
        a, b, ax, by = prob["a"], prob["b"], prob["ax"], prob["by"]
        Kr, Kc, Kx = kernel(prob["row"], e), kernel(prob["col"], e), kernel(prob["corner"], e)
        # restart the scalings from the carried potentials, shifted so the largest is 1
        b_on, by_on = b > 0, by > 0
        shift = torch.maximum(torch.where(b_on, g, -torch.inf).amax(0), torch.where(by_on, gy, -torch.inf))
        shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
        v = torch.where(b_on, torch.exp(torch.clamp((g - shift) / e, min=-_EXP_CAP)), 0.0)
        vy = torch.where(by_on, torch.exp(torch.clamp((gy - shift) / e, min=-_EXP_CAP)), 0.0)
        u = torch.zeros_like(a)
        ux = torch.zeros_like(ax)
        it = 0
        while len(active):
            Kv = torch.addcmul(K @ v, Kc, vy)
            Kxv = (Kr * v).sum(0) + Kx * vy
            it += 1
            if it % 10 == 0 or it >= stage_iter:
                # L1 error of the current plan's source marginal, before the u update
                err = (u * Kv - a).abs().sum(0) + (ux * Kxv - ax).abs()
                done = (err <= stage_tol) | (it >= stage_iter)
                if bool(done.any()):
                    idx = active[done]
                    u_all[:, idx], ux_all[idx], v_all[:, idx], vy_all[idx] = u[:, done], ux[done], v[:, done], vy[done]
                    err_all[idx] = err[done]
                    keep = ~done
                    active = active[keep]
                    if not len(active):
                        break
                    a, b, ax, by, Kr, Kc, Kx = (t[..., keep] for t in (a, b, ax, by, Kr, Kc, Kx))
                    u, ux, v, vy, Kv, Kxv = (t[..., keep] for t in (u, ux, v, vy, Kv, Kxv))
                if check is not None:
                    check()
            # zero masses stay zero: 0 / positive = 0
            u = a / Kv.clamp_min(tiny)
            ux = ax / Kxv.clamp_min(tiny)
            Ktu = torch.addcmul(KT @ u, Kr, ux)
            Kyu = (Kc * u).sum(0) + Kx * ux
            v = b / Ktu.clamp_min(tiny)
            vy = by / Kyu.clamp_min(tiny)
        g = torch.where(prob["b"] > 0, e * torch.log(v_all.clamp_min(tiny)), 0.0)
        gy = torch.where(prob["by"] > 0, e * torch.log(vy_all.clamp_min(tiny)), 0.0)
    # the final plan P = diag(u) K diag(v) (u from the last update); cost <C, P> with 0 * inf = 0
    a, b, ax, by = prob["a"], prob["b"], prob["ax"], prob["by"]
    Kr, Kc, Kx = kernel(prob["row"], e), kernel(prob["col"], e), kernel(prob["corner"], e)
    u, ux, v, vy = u_all, ux_all, v_all, vy_all
    fin = lambda x: torch.where(torch.isfinite(x), x, torch.zeros_like(x))  # noqa: E731  (a one-line local converter reads better than a def)
    inf = lambda x: (~torch.isfinite(x)).to(dtype)  # noqa: E731  (a one-line local converter reads better than a def)
    cost = (u * ((K * fin(C)) @ v + Kc * fin(prob["col"]) * vy)).sum(0) + ux * (
        (Kr * fin(prob["row"]) * v).sum(0) + Kx * fin(prob["corner"]) * vy
    )
    # mass on an infinite-cost arc means no finite plan was found
    inf_mass = (u * ((K * inf(C)) @ v + Kc * inf(prob["col"]) * vy)).sum(0) + ux * (
        (Kr * inf(prob["row"]) * v).sum(0) + Kx * inf(prob["corner"]) * vy
    )
    ok = torch.isfinite(cost) & (err_all <= SINKHORN_ACCEPT) & (inf_mass <= 1e-12)
    return cost.detach().to("cpu", torch.float64).numpy(), ok.detach().cpu().numpy()


def solve(
    p: CoreProblems,
    method: str,
    *,
    processes: int | None = None,
    device: str = "cpu",
    check: Callable[[], None] | None = None,
    sinkhorn_eps: float = SINKHORN_EPS,
    sinkhorn_batch: int | None = None,
) -> np.ndarray:
    """W1 of every problem by ``method`` ("exact" or "sinkhorn"); ``sinkhorn_batch``: see ``w1_sinkhorn``."""
    if p.size == 0:
        return np.zeros(0)
    if method == "exact":
        return w1_exact_parallel(p, processes, check)
    if method == "sinkhorn":
        # problems with small supports go to the network simplex: as fast, and exact
        n_src = (p.a > 0).sum(axis=0) + (p.ax > 0)
        n_dst = (p.b > 0).sum(axis=0) + (p.by > 0)
        small = n_src * n_dst <= EXACT_BELOW
        out = np.empty(p.size)
        if small.any():
            out[small] = w1_exact_parallel(p.subset(np.flatnonzero(small)), processes, check)
        if not small.all():
            out[~small] = w1_sinkhorn(
                p.subset(np.flatnonzero(~small)), eps=sinkhorn_eps, device=device, check=check, batch=sinkhorn_batch
            )
        return out
    raise NNGeoError(f"unknown transport method {method!r}; use exact or sinkhorn")
