#!/usr/bin/env python3
"""Capture signed requests from the OFFICIAL Alibaba Cloud Python SDKs as JSON test vectors.

Each fixture is one raw HTTP request exactly as an SDK put it on the wire (method, path, raw
query string, headers in order, body), signed with AccessKey `testid` / `testsecret`.
`crates/edas-pop/tests/sdk_vectors.rs` verifies every fixture with the known secret at the time
the SDK stamped on it, and checks that tampering makes verification fail. These fixtures are the
independent oracle for the verifier: they do not come from our own signer.

Regenerate (from the repository root; needs PyPI access, not committed: the venv lives in /tmp):

    python3 -m venv /tmp/pop-venv
    /tmp/pop-venv/bin/pip install aliyun-python-sdk-core==2.16.1 aliyun-python-sdk-edas==3.26.9 \
        alibabacloud-edas20170801==2.0.0 alibabacloud-tea-openapi==0.4.6
    /tmp/pop-venv/bin/python crates/edas-pop/tests/vectors/generate.py
    cargo test -p edas-pop --test sdk_vectors

The script starts a capture HTTP server on 127.0.0.1 (a free port), drives three signers
against it (classic ROA `acs AK:SIG`, Tea V3 `ACS3-HMAC-SHA256`, Tea `signature_algorithm='v2'`)
for a few operations, and rewrites `<sdk>-<operation>.json` beside this file. Dates and nonces are
the SDKs' real ones (nothing is patched), so a regeneration changes every fixture.
"""

import json
import pathlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aliyunsdkcore.client import AcsClient
from aliyunsdkedas.request.v20170801 import (
    ContinuePipelineRequest,
    CreateK8sConfigMapRequest,
    DeployK8sApplicationRequest,
    ListK8sConfigMapsRequest,
)
from alibabacloud_edas20170801 import models as tea_models
from alibabacloud_edas20170801.client import Client as TeaClient
from alibabacloud_tea_openapi import utils_models as open_api_models

ACCESS_KEY_ID = "testid"
ACCESS_KEY_SECRET = "testsecret"
OUT_DIR = pathlib.Path(__file__).resolve().parent

# Values chosen to exercise the canonicalization: spaces (`+` on the wire, `%20` in V3), `*`
# (`%2A`), `~` (kept), `/` and `:`, non-ASCII text, JSON, an empty string, a boolean.
APP_ID = "e83acea6-0000-47e1-96ae-c0e953772cdc"
IMAGE = "registry.example.com/ns/app:v1"
ENVS = json.dumps([{"name": "GREETING", "value": "hello world ~*"}], separators=(",", ":"))
UPDATE_STRATEGY = json.dumps(
    {"type": "BatchUpdate", "batchUpdate": {"batch": 2, "releaseType": "auto", "batchWaitTime": 0}},
    separators=(",", ":"),
)
CHANGE_ORDER_DESC = "deploy v1 ~* 发布 ✓ a+b=c&d"
CONFIG_MAP_DATA = [{"Key": "greeting", "Value": "hello world ~*"}, {"Key": "名字", "Value": "值 ✓"}]
CONDITION = {"field": "Name", "pattern": "config map-*", "label selector": "app=web"}

captured = []


class CaptureHandler(BaseHTTPRequestHandler):
    """Records every request and answers the EDAS success envelope."""

    def _capture(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, raw_query = self.path.partition("?")
        captured.append(
            {
                "method": self.command,
                "path": path,
                "raw_query": raw_query,
                "headers": [[name, value] for name, value in self.headers.items()],
                "body": body.decode("utf-8"),
            }
        )
        reply = json.dumps({"Code": 200, "Message": "success", "RequestId": "capture"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = _capture

    def log_message(self, *args):
        pass


def classic_requests():
    deploy = DeployK8sApplicationRequest.DeployK8sApplicationRequest()
    deploy.set_AppId(APP_ID)
    deploy.set_Image(IMAGE)
    deploy.set_Replicas(2)
    deploy.set_Envs(ENVS)
    deploy.set_UpdateStrategy(UPDATE_STRATEGY)
    deploy.set_EnableAhas(True)
    deploy.set_ChangeOrderDesc(CHANGE_ORDER_DESC)
    deploy.set_Command("")
    deploy.set_Args("[]")

    config_map = CreateK8sConfigMapRequest.CreateK8sConfigMapRequest()
    config_map.set_ClusterId("c1")
    config_map.set_Namespace("default")
    config_map.set_Name("my-config")
    config_map.set_Data(json.dumps(CONFIG_MAP_DATA, ensure_ascii=False))

    list_maps = ListK8sConfigMapsRequest.ListK8sConfigMapsRequest()
    list_maps.set_ClusterId("c1")
    list_maps.set_Namespace("default")
    list_maps.set_PageNo(0)
    list_maps.set_PageSize(10)
    list_maps.set_Condition(json.dumps(CONDITION))

    continue_pipeline = ContinuePipelineRequest.ContinuePipelineRequest()
    continue_pipeline.set_PipelineId("p-0001")
    continue_pipeline.set_Confirm(True)

    return [
        ("DeployK8sApplication", deploy),
        ("CreateK8sConfigMap", config_map),
        ("ListK8sConfigMaps", list_maps),
        ("ContinuePipeline", continue_pipeline),
    ]


def run_classic(endpoint):
    client = AcsClient(ACCESS_KEY_ID, ACCESS_KEY_SECRET, "cn-hangzhou")
    for operation, request in classic_requests():
        request.set_endpoint(endpoint)
        client.do_action_with_exception(request)
        yield operation


def run_tea(endpoint, signature_algorithm=None):
    config = open_api_models.Config(
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=ACCESS_KEY_SECRET,
        endpoint=endpoint,
        protocol="http",
        region_id="cn-hangzhou",
    )
    if signature_algorithm:
        config.signature_algorithm = signature_algorithm
    client = TeaClient(config)
    client.deploy_k8s_application(
        tea_models.DeployK8sApplicationRequest(
            app_id=APP_ID,
            image=IMAGE,
            replicas=2,
            envs=ENVS,
            update_strategy=UPDATE_STRATEGY,
            enable_ahas=True,
            change_order_desc=CHANGE_ORDER_DESC,
            command="",
            args="[]",
        )
    )
    yield "DeployK8sApplication"
    client.create_k8s_config_map(
        tea_models.CreateK8sConfigMapRequest(
            cluster_id="c1",
            namespace="default",
            name="my-config",
            data={"greeting": "hello world ~*", "名字": "值 ✓", "a b": "c&d=e"},
        )
    )
    yield "CreateK8sConfigMap"
    client.list_k8s_config_maps(
        tea_models.ListK8sConfigMapsRequest(
            cluster_id="c1",
            namespace="default",
            page_no=0,
            page_size=10,
            region_id="cn-hangzhou",
            condition=CONDITION,
        )
    )
    yield "ListK8sConfigMaps"
    client.continue_pipeline(tea_models.ContinuePipelineRequest(pipeline_id="p-0001", confirm=True))
    yield "ContinuePipeline"


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), CaptureHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"127.0.0.1:{server.server_address[1]}"
    signers = [
        ("classic", "aliyun-python-sdk-core 2.16.1 + aliyun-python-sdk-edas 3.26.9 (ROA, acs AK:SIG)", run_classic(endpoint)),
        ("tea-v3", "alibabacloud-edas20170801 2.0.0 + alibabacloud-tea-openapi 0.4.6 (default ACS3-HMAC-SHA256)", run_tea(endpoint)),
        ("tea-v2", "alibabacloud-edas20170801 2.0.0 + alibabacloud-tea-openapi 0.4.6 (signature_algorithm='v2')", run_tea(endpoint, "v2")),
    ]
    written = 0
    try:
        for sdk, description, operations in signers:
            for operation in operations:
                request = captured.pop()
                assert not captured, "one request per operation"
                fixture = {
                    "sdk": sdk,
                    "sdk_description": description,
                    "operation": operation,
                    "access_key_id": ACCESS_KEY_ID,
                    "access_key_secret": ACCESS_KEY_SECRET,
                    "request": request,
                }
                path = OUT_DIR / f"{sdk}-{operation}.json"
                path.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
                written += 1
    finally:
        server.shutdown()
    print(f"wrote {written} fixtures to {OUT_DIR}")


if __name__ == "__main__":
    main()
