"""Issue 24, getting traffic in: the four K8s Ingress operations (Create, Update, Delete,
ListK8sIngressRules) and Bind/Update/UnbindK8sSlb through BOTH official SDKs against the real
edasd, every answer read through the keys the SDK models read.

On `local` an ingress rule routes on edasd's shared ingress listener (`[local] ingress_listen`):
two applications (the workspace's `edas-testapp`, each answering its own `APP_VERSION`) are
reached through it by host and path, a request no rule matches answers 404, and an update and a
delete take effect at once. On Kubernetes (the fake API server, `edas-fake-kube`) a rule is a
`networking.k8s.io/v1` Ingress with the configured class, and a load balancer a `LoadBalancer`
Service with a node port the API server allocated. Without a listener, on `local` for load
balancers, and for Alibaba-only parameters the refusals name the parameter."""

import http.client
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest
from alibabacloud_edas20170801 import models as tea
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkedas.request.v20170801 import (
    BindK8sSlbRequest, CreateK8sIngressRuleRequest, DeleteK8sIngressRuleRequest,
    ListK8sIngressRulesRequest, UnbindK8sSlbRequest, UpdateK8sIngressRuleRequest,
    UpdateK8sSlbRequest)
from Tea.exceptions import TeaException

from conftest import REPO, Edasd
from test_operations import classic_request
from test_traffic import TESTAPP, free_port, tag, wait_status  # noqa: F401 - `tag` is a fixture

FAKE_KUBE = os.environ.get("EDAS_FAKE_KUBE_BIN", str(REPO / "target" / "debug" / "edas-fake-kube"))
READINESS = json.dumps({"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1})


class FakeKube:
    """The fake Kubernetes API server binary, with a kubeconfig pointing at it."""

    def __init__(self, directory):
        self.kubeconfig = os.path.join(directory, "kubeconfig")
        self.process = subprocess.Popen(
            [FAKE_KUBE, "--kubeconfig", self.kubeconfig, "--pod-ready-delay-ms", "50"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        assert match, f"edas-fake-kube did not start: {line!r}"
        self.url = match.group(1)
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.loads(response.read())

    def stop(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def routed():
    """edasd with the local ingress listener and a fake Kubernetes cluster `fake` whose
    Ingresses have the class `nginx`."""
    with tempfile.TemporaryDirectory(prefix="edasd-sdk-ingress-") as directory:
        # The instances' own users traverse it to their directories.
        os.chmod(directory, 0o711)
        kube = FakeKube(directory)
        listen = free_port()
        config = (f'[local]\ningress_listen = "127.0.0.1:{listen}"\n'
                  f'[[clusters]]\nid = "fake"\nkubeconfig = "{kube.kubeconfig}"\n'
                  'ingress_class = "nginx"\n')
        data = os.path.join(directory, "data")
        holder = {"server": Edasd(data, config)}

        class Routed:
            def __getattr__(self, name):
                return getattr(holder["server"], name)

            def restart(self):
                holder["server"].stop()
                assert holder["server"].process.returncode == 0
                holder["server"] = Edasd(data, config)

        routed = Routed()
        routed.__dict__.update(listen=listen, kube=kube)
        try:
            yield routed
        finally:
            server = holder["server"]
            server.stop()
            kube.stop()
            assert server.process.returncode == 0, "".join(server.log[-50:])


def through(port, host, path="/"):
    """GET `path` through the ingress listener as `host`: (status, first word of the body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode().split(" ")[0]
    finally:
        conn.close()


def run_testapp(server, tag, name, service, port):
    """A one-instance edas-testapp answering `version=<name>`, with Service `service` on
    `port`; waits for it."""
    created = server.tea().insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name=name, cluster_id="local", image_url="edas-testapp:v1", command=TESTAPP,
        command_args=json.dumps([{"argument": tag}]),
        envs=json.dumps([{"name": "APP_VERSION", "value": name}]), readiness=READINESS,
        replicas=1, service_configs=json.dumps([{"name": service, "serviceType": "ClusterIP",
            "portMappings": [{"servicePort": {"port": port, "targetPort": 8080}}]}])))
    info = created.body.application_info
    tag.apps.append((server, info.app_id))
    wait_status(server.classic(), info.change_order_id, (2,))
    return info.app_id


def test_an_ingress_routes_hosts_and_paths_to_two_applications_on_local(routed, tag):
    shop_port, api_port = free_port(), free_port()
    shop = run_testapp(routed, tag, "ing-shop", "shop", shop_port)
    api = run_testapp(routed, tag, "ing-api", "api", api_port)
    client = routed.tea()
    started = time.time()
    # The Tea SDK flattens the dict (IngressConf.rules.1.host=…).
    created = client.create_k8s_ingress_rule(tea.CreateK8sIngressRuleRequest(
        cluster_id="local", namespace="default", name="front",
        labels=json.dumps({"team": "web"}),
        ingress_conf={"rules": [
            {"host": "shop.test", "paths": [
                {"path": "/", "backend": {"serviceName": "shop", "servicePort": shop_port}},
                {"path": "/env", "backend": {"serviceName": "api", "servicePort": api_port}}]},
            {"host": "api.test", "paths": [
                {"path": "/", "backend": {"serviceName": "api", "servicePort": api_port}}]}]})).body
    assert created.code == 200, created.to_map()
    print(f"CreateK8sIngressRule answered in {time.time() - started:.3f} s")
    port = routed.listen
    # edas-testapp answers `/` with its version and `/env/APP_VERSION` with the value.
    assert through(port, "shop.test") == (200, "version=ing-shop")
    assert through(port, "shop.test:80", "/slow?ms=1") == (200, "version=ing-shop")
    assert through(port, "shop.test", "/env/APP_VERSION") == (200, "ing-api")
    assert through(port, "API.test") == (200, "version=ing-api")
    assert through(port, "other.test") == (404, "edas-proxy"), "no rule: the listener's 404"

    # The listener's hop, measured: the median of 200 requests through it and through the
    # service port directly (each on a new connection, as `through` does).
    def median_ms(send):
        times = []
        for _ in range(200):
            began = time.perf_counter()
            assert send()[0] == 200
            times.append((time.perf_counter() - began) * 1000)
        return sorted(times)[100]
    via = median_ms(lambda: through(port, "shop.test"))
    direct = median_ms(lambda: through(shop_port, "shop.test"))
    print(f"GET / median: {via:.2f} ms through the ingress listener, {direct:.2f} ms direct")

    listed = client.list_k8s_ingress_rules(tea.ListK8sIngressRulesRequest(
        cluster_id="local", region_id="cn-hangzhou")).body
    assert listed.code == 200
    conf = listed.data[0].ingress_confs[0]
    assert (listed.data[0].cluster_id, conf.name, conf.namespace) == ("local", "front", "default")
    assert json.loads(conf.labels) == {"team": "web"}
    paths = conf.rules[0].paths
    assert [(p.path, p.app_id, p.backend.service_name, p.status) for p in paths] == [
        ("/", shop, "shop", "Normal"), ("/env", api, "api", "Normal")]
    assert paths[1].backend.service_port == str(api_port)

    # The classic SDK sends IngressConf as one JSON string: shop.test now goes to the api
    # application; api.test is no longer routed.
    classic = routed.classic()
    updated = classic.call(classic_request(
        UpdateK8sIngressRuleRequest, ClusterId="local", Namespace="default", Name="front",
        IngressConf=json.dumps({"rules": [{"host": "shop.test", "paths": [
            {"path": "/", "backend": {"serviceName": "api", "servicePort": api_port}}]}]})))
    assert updated["Code"] == 200, updated
    assert through(port, "shop.test") == (200, "version=ing-api")
    assert through(port, "api.test") == (404, "edas-proxy")
    listed = classic.call(classic_request(
        ListK8sIngressRulesRequest, ClusterId="local",
        Condition=json.dumps({"field": "Name", "pattern": "fr"})))
    assert [c["Name"] for c in listed["Data"][0]["IngressConfs"]] == ["front"]
    assert listed["Data"][0]["IngressConfs"][0]["Rules"][0]["Paths"][0]["AppName"] == "ing-api"

    # A backend that is not an application's Service is refused naming the path; nothing
    # changes.
    with pytest.raises(ServerException) as bad:
        classic.call(classic_request(
            UpdateK8sIngressRuleRequest, ClusterId="local", Namespace="default", Name="front",
            IngressConf=json.dumps({"rules": [{"host": "shop.test", "paths": [
                {"path": "/", "backend": {"serviceName": "shop", "servicePort": api_port}}]}]})))
    assert bad.value.get_error_code() == "InvalidParameter"
    assert "IngressConf.rules[0].paths[0].backend.servicePort" in bad.value.get_error_msg()
    assert through(port, "shop.test") == (200, "version=ing-api")

    # edasd restarted: the stored rule is routed again as soon as it serves (the instances
    # outlived it and were adopted; the listener's table is rebuilt from the store).
    routed.restart()
    client, classic = routed.tea(), routed.classic()
    assert through(port, "shop.test") == (200, "version=ing-api")

    deleted = client.delete_k8s_ingress_rule(tea.DeleteK8sIngressRuleRequest(
        cluster_id="local", namespace="default", name="front")).body
    assert deleted.code == 200
    assert through(port, "shop.test") == (404, "edas-proxy")
    with pytest.raises(ServerException) as gone:
        classic.call(classic_request(
            DeleteK8sIngressRuleRequest, ClusterId="local", Namespace="default", Name="front"))
    assert gone.value.get_error_code() == "EntityNotExist"


def test_a_bad_ingress_rule_is_refused_naming_the_parameter(edasd):
    conf = {"rules": [{"host": "a.test", "paths": [
        {"path": "/", "backend": {"serviceName": "web", "servicePort": 80}}]}]}
    with pytest.raises(TeaException) as refused:
        edasd.tea().create_k8s_ingress_rule(tea.CreateK8sIngressRuleRequest(
            cluster_id="local", namespace="default", name="nolisten", ingress_conf=conf))
    # The Service does not exist either: the parameters are checked first.
    assert refused.value.code == "InvalidParameter"
    assert "backend.serviceName" in refused.value.message
    with pytest.raises(ServerException) as bad:
        edasd.classic().call(classic_request(
            CreateK8sIngressRuleRequest, ClusterId="local", Namespace="default", Name="Bad_Name",
            IngressConf=json.dumps({"rules": [{"host": "a b", "paths": []}]})))
    assert bad.value.get_error_code() == "InvalidParameter"
    message = bad.value.get_error_msg()
    assert "Name" in message and "IngressConf.rules[0].host" in message
    listed = edasd.classic().call(classic_request(ListK8sIngressRulesRequest, ClusterId="local"))
    assert listed["Data"][0]["IngressConfs"] == [], "nothing stored"


def test_without_a_listener_a_valid_rule_is_refused_naming_the_cluster(edasd, tag):
    port = free_port()
    run_testapp(edasd, tag, "ing-nolisten", "nolisten", port)
    with pytest.raises(ServerException) as refused:
        edasd.classic().call(classic_request(
            CreateK8sIngressRuleRequest, ClusterId="local", Namespace="default", Name="nolisten",
            IngressConf=json.dumps({"rules": [{"host": "a.test", "paths": [
                {"path": "/", "backend": {"serviceName": "nolisten", "servicePort": port}}]}]})))
    assert refused.value.get_error_code() == "InvalidParameter.NotSupported"
    assert "ClusterId" in refused.value.get_error_msg()
    assert "ingress_listen" in refused.value.get_error_msg()


def fake_app(server, name):
    created = server.tea().insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name=name, cluster_id="fake", image_url="nginx:1.27", replicas=1,
        service_configs=json.dumps([{"name": f"{name}-web", "serviceType": "NodePort",
            "portMappings": [{"servicePort": {"port": 80, "targetPort": 8080}}]}])))
    info = created.body.application_info
    wait_status(server.classic(), info.change_order_id, (2,))
    return info.app_id


def test_on_kubernetes_rules_are_ingresses_and_load_balancers_services(routed):
    app_id = fake_app(routed, "lb-demo")
    kube = routed.kube
    web = kube.get("/api/v1/namespaces/default/services/lb-demo-web")
    assert web["spec"]["type"] == "NodePort"
    assert 30000 <= web["spec"]["ports"][0]["nodePort"] <= 32767, "allocated by the API server"

    client = routed.tea()
    client.create_k8s_ingress_rule(tea.CreateK8sIngressRuleRequest(
        cluster_id="fake", namespace="default", name="lb-front",
        annotations=json.dumps({"nginx.ingress.kubernetes.io/ssl-redirect": "false"}),
        ingress_conf={"rules": [{"host": "demo.example.com", "secretName": "demo-tls", "paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"serviceName": "lb-demo-web", "servicePort": 80}}]}]}))
    ingress = kube.get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/lb-front")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == "demo.example.com"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": "lb-demo-web", "port": {"number": 80}}
    assert ingress["spec"]["tls"] == [{"hosts": ["demo.example.com"], "secretName": "demo-tls"}]
    assert ingress["metadata"]["labels"]["edas.oam.ingress"] == "lb-front"
    routed.classic().call(classic_request(
        DeleteK8sIngressRuleRequest, ClusterId="fake", Namespace="default", Name="lb-front"))
    with pytest.raises(urllib.error.HTTPError) as gone:
        kube.get("/apis/networking.k8s.io/v1/namespaces/default/ingresses/lb-front")
    assert gone.value.code == 404

    # BindK8sSlb (Tea): a LoadBalancer Service, through a change order.
    bound = client.bind_k8s_slb(tea.BindK8sSlbRequest(
        app_id=app_id, cluster_id="fake", type="internet", port="443", target_port="8080")).body
    assert bound.code == 200 and bound.change_order_id, bound.to_map()
    wait_status(routed.classic(), bound.change_order_id, (2,))
    lb = kube.get("/api/v1/namespaces/default/services/lb-demo-internet-slb")
    assert lb["spec"]["type"] == "LoadBalancer"
    assert [(p["port"], p["targetPort"]) for p in lb["spec"]["ports"]] == [(443, 8080)]
    node_port = lb["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767

    # UpdateK8sSlb (classic) with ServicePortInfos: the 443 port keeps its node port.
    classic = routed.classic()
    updated = classic.call(classic_request(
        UpdateK8sSlbRequest, AppId=app_id, ClusterId="fake", Type="internet",
        SlbName="lb-demo-internet-slb", ServicePortInfos=json.dumps([
            {"port": 443, "targetPort": 8080, "loadBalancerProtocol": "TCP"},
            {"port": 80, "targetPort": 8080, "loadBalancerProtocol": "TCP"}])))
    wait_status(classic, updated["ChangeOrderId"], (2,))
    lb = kube.get("/api/v1/namespaces/default/services/lb-demo-internet-slb")
    ports = {p["port"]: p["nodePort"] for p in lb["spec"]["ports"]}
    assert set(ports) == {443, 80} and ports[443] == node_port

    # Alibaba-only parameters are refused naming them.
    with pytest.raises(TeaException) as slb_id:
        client.bind_k8s_slb(tea.BindK8sSlbRequest(
            app_id=app_id, type="internet", port="80", target_port="8080", slb_id="lb-123"))
    assert slb_id.value.code == "InvalidParameter.NotSupported" and "SlbId" in slb_id.value.message
    with pytest.raises(ServerException) as intranet:
        classic.call(classic_request(BindK8sSlbRequest, AppId=app_id, Type="intranet",
                                     Port="80", TargetPort="8080"))
    assert intranet.value.get_error_code() == "InvalidParameter.NotSupported"
    assert "Type" in intranet.value.get_error_msg()

    unbound = classic.call(classic_request(UnbindK8sSlbRequest, AppId=app_id, Type="internet"))
    wait_status(classic, unbound["ChangeOrderId"], (2,))
    with pytest.raises(urllib.error.HTTPError) as gone:
        kube.get("/api/v1/namespaces/default/services/lb-demo-internet-slb")
    assert gone.value.code == 404
    with pytest.raises(TeaException) as twice:
        client.unbind_k8s_slb(tea.UnbindK8sSlbRequest(app_id=app_id, type="internet"))
    assert twice.value.code == "InvalidParameter" and "Type" in twice.value.message


def test_load_balancers_and_node_ports_are_refused_on_local(edasd):
    created = edasd.tea().insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="lb-local", cluster_id="local", image_url="busybox:1.36", command="sleep",
        command_args='[{"argument":"300"}]', replicas=0)).body.application_info
    wait_status(edasd.classic(), created.change_order_id, (2,))
    app_id = created.app_id
    with pytest.raises(TeaException) as bind:
        edasd.tea().bind_k8s_slb(tea.BindK8sSlbRequest(
            app_id=app_id, type="internet", port="80", target_port="8080"))
    assert bind.value.code == "InvalidParameter.NotSupported" and "AppId" in bind.value.message
    for request in (
            classic_request(UpdateK8sSlbRequest, AppId=app_id, Type="internet", Port="80",
                            TargetPort="8080"),
            classic_request(UnbindK8sSlbRequest, AppId=app_id, Type="internet")):
        with pytest.raises(ServerException) as refused:
            edasd.classic().call(request)
        assert refused.value.get_error_code() == "InvalidParameter.NotSupported"
    with pytest.raises(TeaException) as node_port:
        edasd.tea().create_k8s_service(tea.CreateK8sServiceRequest(
            app_id=app_id, name="np", type="NodePort",
            service_ports=json.dumps([{"protocol": "TCP", "port": 18080, "targetPort": 8080}])))
    assert "NodePort" in node_port.value.message and "local" in node_port.value.message


def test_an_ingress_rule_needs_the_rights_on_the_rule_and_on_every_application(routed):
    created = routed.tea().insert_k8s_application(tea.InsertK8sApplicationRequest(
        app_name="ram-app", cluster_id="fake", image_url="nginx:1.27", replicas=1,
        service_configs=json.dumps([{"name": "ram-web", "serviceType": "ClusterIP",
            "portMappings": [{"servicePort": {"port": 80, "targetPort": 8080}}]}])))
    info = created.body.application_info
    wait_status(routed.classic(), info.change_order_id, (2,))
    routed.admin("POST", "/edasd/v1/users", {"Name": "ingrid"})
    key = routed.admin("POST", "/edasd/v1/users/ingrid/keys")["AccessKey"]
    ingrid = routed.tea(key["AccessKeyId"], key["AccessKeySecret"])
    routed.admin("PUT", "/edasd/v1/policies/ingress-only", {"Document": {"Version": "1",
        "Statement": [{"Effect": "Allow", "Action": "edas:ManageConfiguration",
                       "Resource": "acs:edas:*:*:cluster/fake/namespace/default/ingress/*"}]}})
    routed.admin("PUT", "/edasd/v1/users/ingrid/policies/ingress-only")
    request = tea.CreateK8sIngressRuleRequest(
        cluster_id="fake", namespace="default", name="ram-front", ingress_conf={"rules": [
            {"host": "ram.test", "paths": [
                {"path": "/", "backend": {"serviceName": "ram-web", "servicePort": 80}}]}]})
    with pytest.raises(TeaException) as denied:
        ingrid.create_k8s_ingress_rule(request)
    assert denied.value.code == "AUTH_ERROR", "routing to an application needs its manager"
    listed = routed.tea().list_k8s_ingress_rules(
        tea.ListK8sIngressRulesRequest(cluster_id="fake")).body
    assert listed.data[0].ingress_confs == [], "nothing stored"

    routed.admin("PUT", "/edasd/v1/policies/ram-app", {"Document": {"Version": "1",
        "Statement": [{"Effect": "Allow", "Action": "edas:ManageApplication",
                       "Resource": f"acs:edas:*:*:namespace/*/application/{info.app_id}"}]}})
    routed.admin("PUT", "/edasd/v1/users/ingrid/policies/ram-app")
    assert ingrid.create_k8s_ingress_rule(request).body.code == 200
    # Without edas:ReadConfiguration the rule is left out of her listing (and without
    # edas:ReadCluster the cluster too); the admin sees it.
    listed = ingrid.list_k8s_ingress_rules(tea.ListK8sIngressRulesRequest(cluster_id="fake")).body
    assert listed.code == 200 and listed.data == []
    listed = routed.tea().list_k8s_ingress_rules(
        tea.ListK8sIngressRulesRequest(cluster_id="fake")).body
    assert [c.name for c in listed.data[0].ingress_confs] == ["ram-front"]
    assert ingrid.delete_k8s_ingress_rule(tea.DeleteK8sIngressRuleRequest(
        cluster_id="fake", namespace="default", name="ram-front")).body.code == 200
