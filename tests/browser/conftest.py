"""The browser tier's fixtures: the real edasd binary on a free loopback port (local runtime,
temporary data directory, an administrator key from the environment), a signed-API helper for
what the tests prepare outside the console (a read-only user, a Service), and headless Chromium
through chromedriver (Debian's `chromium` and `chromium-driver`), with its performance log on
so the tests can list every request the page made."""

import datetime
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADMIN = ("LTAIbrowsertieradmin1", "browser-tier-admin-secret-0123456789")
ARTIFACTS = Path(os.environ.get("EDAS_BROWSER_ARTIFACTS", REPO / "target" / "browser-artifacts"))
TESTAPP = os.environ.get("EDAS_TESTAPP_BIN", str(REPO / "target" / "debug" / "edas-testapp"))


class Edasd:
    def __init__(self, data_dir):
        binary = os.environ.get("EDASD_BIN", str(REPO / "target" / "debug" / "edasd"))
        env = dict(os.environ)
        env.update({"EDASD_ACCESS_KEY_ID": ADMIN[0], "EDASD_ACCESS_KEY_SECRET": ADMIN[1],
                    "EDASD_LOG": "info"})
        self.log = []
        self.process = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        address = []
        ready = threading.Event()

        def read():
            for line in self.process.stderr:
                self.log.append(line)
                match = re.search(r"edasd listening on http://(\S+)", line)
                if match and not address:
                    address.append(match.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60) or not address:
            self.stop()
            raise RuntimeError("edasd did not start:\n" + "".join(self.log))
        self.host = address[0]
        self.base = f"http://{self.host}"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def call(self, method, path, action=None, query=None, body=None, key=ADMIN):
        """A request signed with ACS3-HMAC-SHA256 (edas-api.md §4.2); (status, JSON answer)."""
        query = {k: str(v) for k, v in (query or {}).items()}
        data = b"" if body is None else json.dumps(body).encode()
        headers = {
            "accept": "application/json",
            "host": self.host,
            "x-acs-date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": hashlib.sha256(data).hexdigest(),
            "x-acs-version": "2017-08-01",
        }
        if action:
            headers["x-acs-action"] = action
        if data:
            headers["content-type"] = "application/json"
        names = sorted(headers)
        canonical = "\n".join([
            method, path,
            "&".join(f"{k}={urllib.parse.quote(v, safe='~')}" for k, v in sorted(query.items())),
            "".join(f"{n}:{headers[n]}\n" for n in names), ";".join(names),
            headers["x-acs-content-sha256"]])
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        signature = hmac.new(key[1].encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"ACS3-HMAC-SHA256 Credential={key[0]},"
                                    f"SignedHeaders={';'.join(names)},Signature={signature}")
        del headers["host"]
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, data=data or None, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


@pytest.fixture(scope="session")
def edasd():
    with tempfile.TemporaryDirectory(prefix="edasd-browser-") as tmp:
        # Instances run as another user when this runs as root: they must reach their
        # directories beside the data directory.
        os.chmod(tmp, 0o711)
        server = Edasd(Path(tmp) / "data")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def tag():
    """A unique argument of the tier's instances; kills them when the tier ends (instances
    outlive edasd by design)."""
    value = f"edasd-browser-{uuid.uuid4().hex[:12]}"
    yield value
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            args = (pid_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if value.encode() in args:
            try:
                os.killpg(int(pid_dir.name), signal.SIGKILL)
            except OSError:
                pass


def chromium_paths():
    browser = os.environ.get("EDAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("EDAS_CHROMEDRIVER") or shutil.which("chromedriver")
    return browser, driver


@pytest.fixture(scope="session")
def browser():
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium_paths()
    if not binary or not driver:
        pytest.skip("Chromium or chromedriver is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--metrics-recording-only"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(service=Service(driver), options=options)
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
