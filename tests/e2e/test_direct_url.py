"""A page's URL opened directly as the first visit after the server starts (a bookmark, a reload)
must show the whole app: app.py's navigation and sidebar, not the page script on its own (server
and browser from conftest.py)."""

from __future__ import annotations


def test_first_visit_to_a_page_url_runs_the_app(tmp_path, serve_app, browser):
    url = serve_app(tmp_path, NNGEO_EMBEDDED_WORKER="0")
    page = browser.new_page()
    try:
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
        page.close()
