"""A page's URL opened directly as the first visit after the server starts (a bookmark, a reload)
must show the whole app: app.py's navigation and sidebar, not the page script on its own."""

from __future__ import annotations

import os

import pytest

from nngeo_core.dashboard.server import serve
from nngeo_core.settings import home_env

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def test_first_visit_to_a_page_url_runs_the_app(tmp_path):
    from playwright.sync_api import sync_playwright

    env = {**home_env(tmp_path), "NNGEO_EMBEDDED_WORKER": "0"}
    with serve(env, log_path=tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/persistence")
            page.wait_for_selector("h1:has-text('Neural persistence')")
            sidebar = page.locator("[data-testid=stSidebar]")
            sidebar.get_by_text("Store:").wait_for()
            nav = page.locator("[data-testid=stSidebarNav]").inner_text()
            # app.py's titled pages, not the pages/ folder's file names
            assert "Volume element" in nav and "Geodesics" in nav
            assert "volume\n" not in nav.lower().replace("volume element", "")
        finally:
            browser.close()
