"""Printing a release page (or "save as PDF") gives the release, its contacts and About: no navigation, no form.

Headless Chromium prints the page to PDF over loopback HTTP; pdftotext reads the PDF back.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pressroom.mail.preview import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import NOW
from tests.site_support import build, serve, write_sample

pytestmark = pytest.mark.browser


def test_a_printed_release_page_holds_the_release_contacts_and_about_and_no_navigation_or_form(project, tmp_path):
    if not Path(CHROMIUM).exists() or shutil.which("pdftotext") is None:
        pytest.fail("Chromium or pdftotext is missing: run scripts/system-deps (make test does)")
    from playwright.sync_api import sync_playwright

    write_sample(project)
    build(project, NOW)
    pdf = tmp_path / "release.pdf"
    with serve(project.root / "public") as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{base}releases/battery-passport-pilot/")
        assert page.locator(".site-nav").is_visible() and page.locator("form.subscribe-form").is_visible()  # on screen, they are there
        page.pdf(path=str(pdf), format="A4")
        browser.close()
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout.split())
    assert "Battery passport pilot starts in three member states" in text
    assert "The pilot starts today." in text
    assert "Ana Example" in text and "ana@example.org" in text  # the contacts
    assert "About us. We test things." in text
    for screen_only in ("Skip to content", "Topics", "Subscribe", "RSS", "Previous release", "Email address", "A weekly digest"):
        assert screen_only not in text, screen_only
