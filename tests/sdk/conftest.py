"""Starts the real edasd binary on a free loopback port with a temporary data directory and an
administrator key from the environment, and gives the tests clients of BOTH official SDKs
configured only with endpoint, protocol http and a key pair (edas-api.md section 4.5)."""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from email.utils import formatdate
from pathlib import Path

import pytest
from aliyunsdkcore.client import AcsClient
from alibabacloud_edas20170801.client import Client as TeaClient
from alibabacloud_tea_openapi.models import Config as TeaConfig

REPO = Path(__file__).resolve().parents[2]
ADMIN_ID = "LTAIsdktieradmin0001"
ADMIN_SECRET = "sdk-tier-admin-secret-0123456789"
REGION = "cn-hangzhou"


class Edasd:
    def __init__(self, data_dir, config=None):
        """`config`: the text of a configuration file (`--config`), if any."""
        binary = os.environ.get("EDASD_BIN", str(REPO / "target" / "debug" / "edasd"))
        env = dict(os.environ)
        env.update({
            "EDASD_ACCESS_KEY_ID": ADMIN_ID,
            "EDASD_ACCESS_KEY_SECRET": ADMIN_SECRET,
            "EDASD_LOG": "info",
        })
        self.log = []
        args = [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)]
        if config is not None:
            config_file = Path(str(data_dir) + ".toml")
            config_file.write_text(config)
            args += ["--config", str(config_file)]
        self.process = subprocess.Popen(
            args,
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
        self.endpoint = address[0]

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def admin(self, method, path, body=None):
        """Calls edasd's admin API, signed with V1 HMAC-SHA1 (Content-MD5 covers the body)."""
        data = b"" if body is None else json.dumps(body).encode()
        headers = {
            "Accept": "application/json",
            "Date": formatdate(usegmt=True),
            "x-acs-signature-method": "HMAC-SHA1",
            "x-acs-signature-version": "1.0",
            "x-acs-signature-nonce": uuid.uuid4().hex,
        }
        content_md5 = content_type = ""
        if data:
            content_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
            content_type = "application/json"
            headers["Content-MD5"] = content_md5
            headers["Content-Type"] = content_type
        acs = "".join(f"{k.lower()}:{v}\n" for k, v in sorted(
            (k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-acs-")))
        to_sign = f"{method}\napplication/json\n{content_md5}\n{content_type}\n{headers['Date']}\n{acs}{path}"
        signature = base64.b64encode(
            hmac.new(ADMIN_SECRET.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
        headers["Authorization"] = f"acs {ADMIN_ID}:{signature}"
        request = urllib.request.Request(
            f"http://{self.endpoint}{path}", data=data or None, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def tea(self, key_id=ADMIN_ID, secret=ADMIN_SECRET):
        return TeaClient(TeaConfig(access_key_id=key_id, access_key_secret=secret,
                                   endpoint=self.endpoint, protocol="http"))

    def classic(self, key_id=ADMIN_ID, secret=ADMIN_SECRET):
        return Classic(AcsClient(key_id, secret, REGION), self.endpoint)


class Classic:
    """The classic SDK client plus the endpoint every request is pointed at."""

    def __init__(self, client, endpoint):
        self.client = client
        self.endpoint = endpoint

    def call(self, request):
        request.set_endpoint(self.endpoint)
        return json.loads(self.client.do_action_with_exception(request))


@pytest.fixture(scope="session")
def edasd():
    with tempfile.TemporaryDirectory(prefix="edasd-sdk-") as data_dir:
        server = Edasd(data_dir)
        try:
            yield server
        finally:
            server.stop()
            code = server.process.returncode
            assert code == 0, f"edasd exited with {code}:\n" + "".join(server.log[-50:])


def wait_finished(read_status, timeout=60):
    """Polls a change order's status until it is no longer active (0, 1, 8, 9)."""
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status = read_status()
        if status not in (0, 1, 8, 9):
            return status
        time.sleep(0.2)
    raise AssertionError(f"the change order is still active (status {status}) after {timeout} s")
