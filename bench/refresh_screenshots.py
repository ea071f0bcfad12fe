"""Refresh the README's screenshots: run the browser scenario and copy its screenshots.

    python bench/refresh_screenshots.py            # needs Debian's chromium (/usr/bin/chromium)
    python bench/refresh_screenshots.py --out DIR  # somewhere else than assets/screenshots/

Runs ``tests/e2e/test_dashboard_e2e.py`` and ``test_reproduce_browser.py`` (a few minutes) with
$E2E_SCREENSHOTS pointing at a temporary folder, and only when every stage passed copies the screenshots into
``assets/screenshots/``: a failed run never leaves a mix of old and new pictures. Exits with
pytest's status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the dashboard scenario, and the Reproduce page's (its own server: a claim run in the worker)
SCENARIOS = [ROOT / "tests" / "e2e" / "test_dashboard_e2e.py", ROOT / "tests" / "e2e" / "test_reproduce_browser.py"]
SCREENSHOTS_ENV = "E2E_SCREENSHOTS"  # read by the scenario's `shots` fixture


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots", help="where the screenshots go")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nngeo-screenshots-") as tmp:
        env = {**os.environ, SCREENSHOTS_ENV: tmp}
        code = subprocess.call(
            [sys.executable, "-m", "pytest", *map(str, SCENARIOS), "-q", "-x", "-rxXs"], cwd=ROOT, env=env
        )
        made = sorted(Path(tmp).glob("*.png"))
        if code != 0:
            print(f"the scenario failed (pytest exit {code}); {a.out} left as it was", file=sys.stderr)
            return code
        if not made:
            print("the scenario made no screenshots (was it skipped? is chromium installed?)", file=sys.stderr)
            return 1
        a.out.mkdir(parents=True, exist_ok=True)
        for shot in made:
            shutil.copyfile(shot, a.out / shot.name)
        print(f"{len(made)} screenshots copied into {a.out}: {', '.join(s.stem for s in made)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
