"""Debian's Chromium, headless, driven by Selenium through Debian's chromedriver: for the probability
view's browser test and the README's screenshot of it (apt install chromium chromium-driver)."""

from __future__ import annotations

import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

__all__ = ["chromium", "missing"]


def missing() -> str:
    """Why the browser cannot start here ("" when it can)."""
    absent = [p for p in ("chromium", "chromedriver") if shutil.which(p) is None]
    if absent:
        return (f"{' and '.join(absent)} not found: apt install chromium chromium-driver (Debian's packages; "
                "Selenium must not download a driver)")
    return ""


def chromium(width: int = 1200, height: int = 800) -> webdriver.Chrome:
    """A headless Chromium whose network log (CDP Network events) can be read back with get_log("performance")."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or "chromedriver"))
