"""The browser tier's fixtures: the real edasd binary on a free loopback port (local runtime,
temporary data directory, an administrator key from the environment), a signed-API helper for
what the tests prepare outside the console (a read-only user, a Service), and headless Chromium
through chromedriver (Debian's `chromium` and `chromium-driver`), with its performance log on
so the tests can list every request the page made."""

import datetime
import hashlib
import hmac
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_sdk_conftest():
    """The SDK tier's edasd launcher (tests/sdk/conftest.py), reused as it is."""
    spec = importlib.util.spec_from_file_location(
        "edas_sdk_conftest", REPO / "tests" / "sdk" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def target_dir():
    """Where cargo puts the binaries (CARGO_TARGET_DIR, a `build.target-dir` config, ./target)."""
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return Path(json.loads(out)["target_directory"])


SDK = _load_sdk_conftest()
ADMIN = (SDK.ADMIN_ID, SDK.ADMIN_SECRET)
TARGET = target_dir()
os.environ.setdefault("EDASD_BIN", str(TARGET / "debug" / "edasd"))
TESTAPP = os.environ.setdefault("EDAS_TESTAPP_BIN", str(TARGET / "debug" / "edas-testapp"))
ARTIFACTS = Path(os.environ.get("EDAS_BROWSER_ARTIFACTS", TARGET / "browser-artifacts"))


class Edasd(SDK.Edasd):
    """edasd as the SDK tier starts it, plus requests signed with ACS3-HMAC-SHA256."""

    def __init__(self, data_dir):
        super().__init__(data_dir)
        self.host = self.endpoint
        self.base = f"http://{self.host}"

    def call(self, method, path, action=None, query=None, body=None, key=ADMIN, form=None):
        """A request signed with ACS3-HMAC-SHA256 (edas-api.md §4.2), its parameters in the
        query, a JSON `body` (admin API) or a `form` body; (status, JSON answer)."""
        query = {k: str(v) for k, v in (query or {}).items()}
        data = b"" if body is None else json.dumps(body).encode()
        if form is not None:
            data = urllib.parse.urlencode(sorted(form.items())).encode()
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
            headers["content-type"] = ("application/json" if form is None
                                       else "application/x-www-form-urlencoded")
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
    """A unique argument of the tier's instances; they are killed by it when the tier ends
    (instances outlive edasd by design)."""
    value = f"edasd-browser-{uuid.uuid4().hex[:12]}"
    yield value
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if value.encode() in cmdline.read_bytes().split(b"\0"):
                os.killpg(int(cmdline.parent.name), signal.SIGKILL)
        except OSError:
            continue


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
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    driver = webdriver.Chrome(service=Service(driver), options=options)
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
