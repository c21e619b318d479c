"""A person in headless Chromium: sign up, post an image, see it in the feed."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from e2e_support import ARTIFACTS, Cluster, png_bytes
from playwright import sync_api

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_sign_up_post_and_see_it_in_the_feed(cluster: Cluster, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is installed by make setup"
    image = tmp_path / "sunset.png"
    image.write_bytes(png_bytes((250, 140, 20), (320, 200)))
    username = f"web{uuid.uuid4().hex[:8]}"
    caption = f"A browser-made post {uuid.uuid4().hex[:6]}"

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(f"{cluster.url}/accounts/signup/")
            page.fill("input[name=username]", username)
            page.fill("input[name=password1]", "Browser-Pass-1234")
            page.fill("input[name=password2]", "Browser-Pass-1234")
            with page.expect_navigation():
                page.click("form:has(input[name=password1]) button[type=submit]")
            assert page.locator("span.who").inner_text() == username

            page.goto(f"{cluster.url}/posts/new/")
            page.set_input_files("input[name=image]", str(image))
            page.fill("textarea[name=caption]", caption)
            with page.expect_navigation():
                page.click("form:has(input[name=image]) button[type=submit]")

            photo = page.locator(f'img.photo[alt="{caption}"]')
            photo.wait_for(timeout=10_000)
            photo.scroll_into_view_if_needed()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0",
                arg=photo.element_handle(),
                timeout=10_000,
            )
            assert photo.evaluate("img => img.naturalWidth") == 320
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "e2e-feed.png"), full_page=True)
        finally:
            browser.close()
