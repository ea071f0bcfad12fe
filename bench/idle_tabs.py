"""What idle dashboard tabs cost the server, and how fast one more page loads beside them.

    python bench/idle_tabs.py [--window 30] [--tabs 1,10] [--pages runs,train]

Starts `streamlit run app.py` (with its embedded worker) on a free port against a temporary
NNGEO_HOME holding one trained mlp on xor, opens N tabs of a page in headless Chromium (Debian's
/usr/bin/chromium), waits until each has loaded and settled, then measures the CPU time of the
server and every process below it (the worker included; from /proc) over an idle window, for each
page and N. With the largest N of the first page open, it then times loading one more page in a
new tab. Prints a table with percent of a core per idle tab; the goal is at most 2 % per tab and
a page load of at most 3 s with 10 tabs open. The machine's load average is printed too: other
work on it inflates every number.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from nngeo_core.dashboard.server import free_port, serve
from nngeo_core.runs import train_run
from nngeo_core.settings import home_env
from nngeo_core.specs import DataSpec, ModelSpec, RunSpec, TrainSpec
from nngeo_core.store import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
HEADINGS = {"runs": "Runs", "train": "Train", "curvature": "Curvature"}
SHOWN = "(heading) => { const h = document.querySelector('h1'); return h && h.innerText === heading; }"
# shown and its script run over (a page that polls every second may never look so on a busy server)
SETTLED = (
    "(heading) => { const h = document.querySelector('h1');"
    " return h && h.innerText === heading && !document.querySelector('[data-testid=\"stStatusWidget\"]'); }"
)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (those gone are skipped)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICK


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it, now."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def server_pid(port: int) -> int:
    """The `streamlit run` process listening on ``port`` (serve() does not hand out its pid)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):
                continue
            if b"streamlit" in b" ".join(argv) and str(port).encode() in argv:
                return int(entry.name)
    raise SystemExit(f"no streamlit process on port {port}")


def open_tabs(browser, url: str, page: str, n: int, until: str = SHOWN, timeout_s: float = 180) -> tuple[list, float]:
    """``n`` new tabs of ``page``, one after the other, each until it shows its heading; returns
    them and the slowest load in seconds (inf, with the tabs opened so far, on a timeout)."""
    tabs, slowest = [], 0.0
    for _ in range(n):
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tabs.append(tab)
        t = time.perf_counter()
        try:
            tab.goto(f"{url}/{page}", wait_until="commit", timeout=timeout_s * 1000)
            tab.wait_for_function(until, arg=HEADINGS[page], timeout=timeout_s * 1000, polling=50)
        except PlaywrightTimeout:
            return tabs, float("inf")
        slowest = max(slowest, time.perf_counter() - t)
    return tabs, slowest


def idle_cpu(pid: int, window: float) -> float:
    """Cores the server tree used on average over ``window`` seconds (1.0 = one core busy)."""
    tree = process_tree(pid)
    before, t = cpu_seconds(tree), time.monotonic()
    time.sleep(window)
    return (cpu_seconds(tree) - before) / (time.monotonic() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=30.0, help="seconds of idle time measured (default 30)")
    parser.add_argument("--tabs", default="1,10", help="tab counts, comma-separated (default 1,10)")
    parser.add_argument("--pages", default="runs,train", help=f"pages, comma-separated, of {', '.join(HEADINGS)}")
    args = parser.parse_args()
    counts = [int(n) for n in args.tabs.split(",")]
    pages = args.pages.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {**home_env(home), "NNGEO_EMBEDDED_WORKER": "1", "NNGEO_DOWNLOAD": "0"}
        os.environ.update(env)  # this process trains the run; serve() passes env to the app
        spec = RunSpec(
            data=DataSpec("xor"), model=ModelSpec("mlp", {"widths": (8, 8)}), train=TrainSpec(epochs=3, device="cpu")
        )
        train_run(spec, store=Store(env["NNGEO_STORE"]))
        port = free_port()
        with serve(env, log_path=home / "streamlit.log", port=port) as url, sync_playwright() as pw:
            pid = server_pid(port)
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            warm = browser.new_page()
            warm.goto(url)
            warm.wait_for_function(SETTLED, arg="Runs", timeout=300_000)  # the first visit starts the worker
            warm.close()
            time.sleep(5)  # the worker's start-up is over
            rows = [("server alone", 0, idle_cpu(pid, args.window), 0.0)]
            print(f"server alone: {100 * rows[-1][2]:.1f} % of a core", flush=True)
            extra_s = None
            for page in pages:
                for n in counts:
                    tabs, slowest = open_tabs(browser, url, page, n)
                    time.sleep(5)  # let the last runs finish
                    rows.append((page, len(tabs), idle_cpu(pid, args.window), slowest))
                    print(f"{page} × {len(tabs)}: {100 * rows[-1][2]:.1f} % of a core", flush=True)
                    if page == pages[0] and n == max(counts):
                        extra, extra_s = open_tabs(browser, url, "curvature", 1, until=SETTLED)
                        extra[0].close()
                    for tab in tabs:
                        tab.close()
            browser.close()
    base = rows[0][2]
    print(f"cpu cores {os.cpu_count()}, load average now {os.getloadavg()[0]:.1f}, window {args.window:.0f} s\n")
    print(f"{'page':14s} {'tabs':>5s} {'server % core':>14s} {'% core per tab':>15s} {'slowest load s':>15s}")
    for page, n, cores, slowest in rows:
        per_tab = f"{100 * (cores - base) / n:15.2f}" if n else f"{'':15s}"
        print(f"{page:14s} {n:5d} {100 * cores:14.2f} {per_tab} {slowest:15.2f}")
    if extra_s is not None:
        print(f"\none more page (Curvature) with {max(counts)} {pages[0]} tabs open: {extra_s:.2f} s (goal <= 3 s)")
    print("per tab: above the server alone; goal <= 2 % of a core per idle tab; inf: no load within 180 s")


if __name__ == "__main__":
    main()
