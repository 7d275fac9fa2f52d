"""JupyterLab in a real headless Chromium, for the tests that look at what a person sees.

``lab(root, env)`` starts a private JupyterLab server on a free loopback port (no token,
its own runtime, cache, settings and workspace folders), ``chromium()`` a headless
Chromium driven by Selenium through the system ``chromedriver``; ``run_all`` opens a
notebook, runs every cell from the Run menu and waits until the kernel is done.
``missing()`` says why none of this can run here (``None`` when it can).

Example::

    with lab(tmp_path, env) as url, chromium() as driver:
        run_all(driver, url, "quickstart.ipynb", timeout=240)
        driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
# Flags that run Chromium headless on a bare machine, as root, with no network beyond
# loopback and no first-run, sync or update traffic.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def browser_binary() -> str | None:
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    return None


def missing() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    if browser_binary() is None or shutil.which("chromedriver") is None:
        return "no Chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"
    for module, extra in (("selenium", "selenium"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            return f"{extra} is not installed (pip install -e '.[dev,browser]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def lab(root: Path, env: dict[str, str], *, timeout: float = 90) -> Iterator[str]:
    """A JupyterLab server serving ``root``; yields its base URL."""
    port = _free_port()
    private = root.parent / f"{root.name}-jupyter"
    env = dict(env)
    for var, sub in (
        ("XDG_CACHE_HOME", "cache"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("IPYTHONDIR", "ipython"),
    ):
        env[var] = str(private / sub)
        (private / sub).mkdir(parents=True, exist_ok=True)
    # no "Jupyter news" pop-up over the page, and no check for updates
    settings = private / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None", "--ServerApp.open_browser=False",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = (private / "lab.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterLab did not start:\n" + (private / "lab.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A headless Chromium with a fresh profile in ``profile``, driven by Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser_binary() or ""
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # the system driver, named: Selenium never goes looking for one on the network
    service = Service(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def run_all(driver: Any, url: str, notebook: str, *, timeout: float, script: str = "") -> None:
    """Open ``notebook`` in JupyterLab, run all its cells from the Run menu, and wait until
    every code cell has run (no ``[*]`` prompt, every prompt numbered). ``script``: some
    JavaScript run in the page just before (to watch what the page shows meanwhile)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/lab/tree/{notebook}?reset")
    wait = WebDriverWait(driver, 120)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")))
    # the kernel is ready when the status bar says so
    wait.until(
        lambda d: "| Idle" in d.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget").text
        or "| Idle" in d.find_element(By.ID, "jp-main-statusbar").text
    )
    if script:
        driver.execute_script(script)
    prompts_js = (
        "return [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
        ".map(p => p.textContent.trim());"
    )
    # A Run All that arrives while the page is still connecting to the kernel is dropped
    # without a word: click again until a cell starts.
    for _attempt in range(6):
        wait.until(
            ec.element_to_be_clickable(
                (By.XPATH, "//li[contains(@class,'lm-MenuBar-item')][.//div[text()='Run']]")
            )
        ).click()
        wait.until(
            ec.element_to_be_clickable(
                (By.CSS_SELECTOR, 'li.lm-Menu-item[data-command="runmenu:run-all"]')
            )
        ).click()
        try:
            WebDriverWait(driver, 10, poll_frequency=0.25).until(
                lambda d: any(p != "[ ]:" for p in d.execute_script(prompts_js))
            )
            break
        except TimeoutException:
            continue
    else:
        raise TimeoutException("Run All never started a cell")

    def finished(d: Any) -> bool:
        prompts = d.execute_script(prompts_js)
        return bool(prompts) and all(p not in ("[*]:", "[ ]:", "") for p in prompts)

    WebDriverWait(driver, timeout, poll_frequency=0.5).until(finished)
