"""The README's gray release, entirely from the web console in headless Chromium against the
real edasd on `local`: sign in, create the application, deploy v2 with one gray instance (20 %
of the requests) and two manual batches, watch the live page advance without a reload, continue
twice; a second release aborted and rolled back, a third aborted and rolled back in one step;
an instance's log followed live; the audit trail; then a read-only user who sees no button it
may not use and whose forced call is refused. Throughout, every request the page makes goes to
edasd itself and the page breaks no Content-Security-Policy rule. Screenshots go to
target/browser-artifacts/ (EDAS_BROWSER_ARTIFACTS)."""

import json
import re
import time
import urllib.parse
import urllib.request

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import ADMIN, ARTIFACTS, TESTAPP

READONLY = ("LTAIbrowserreadonly01", "browser-tier-reader-secret-0123456789")
READINESS = json.dumps({"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1})
STATE = {}
REQUESTS = []


def shot(driver, name):
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def wait(driver, condition, timeout=30, what="a condition"):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=[StaleElementReferenceException]).until(lambda d: condition(d))
    except Exception as e:
        shot(driver, "failure")
        raise AssertionError(f"timed out waiting for {what} on {driver.current_url}") from e


def by_id(driver, element_id):
    return wait(driver, lambda d: d.find_elements(By.ID, element_id), what=f"#{element_id}")[0]


def drain_requests(driver):
    """Every URL the page asked for since the last call (Chrome's performance log)."""
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            REQUESTS.append(message["params"]["request"]["url"])


def co_status(driver):
    return int(by_id(driver, "change-order").get_attribute("data-status"))


def wait_status(driver, wanted, timeout=60, seen=None):
    def reached(d):
        status = co_status(d)
        if seen is not None and (not seen or seen[-1] != status):
            seen.append(status)
        return status in wanted
    wait(driver, reached, timeout, f"change order status in {wanted}")
    return co_status(driver)


def confirm(driver, button_id):
    by_id(driver, button_id).click()
    dialog = by_id(driver, "confirm")
    wait(driver, lambda d: dialog.get_attribute("open") is not None, what="the confirmation dialog")
    by_id(driver, "confirm-ok").click()
    wait(driver, lambda d: dialog.get_attribute("open") is None, what="the dialog to close")


def assert_accessible(driver):
    """Every field has a label, every button a name, and there is one h1."""
    problems = driver.execute_script("""
        const out = [];
        for (const el of document.querySelectorAll('main input, main select, main textarea')) {
          if (!el.labels.length && !el.getAttribute('aria-label')) out.push('unlabelled ' + (el.id || el.name));
        }
        for (const b of document.querySelectorAll('button, a.button')) {
          if (!b.textContent.trim() && !b.getAttribute('aria-label') && b.offsetParent) out.push('unnamed button ' + b.id);
        }
        if (document.querySelectorAll('main h1').length !== 1) out.push('not one h1');
        return out;
    """)
    assert not problems, problems


def sign_in(driver, edasd, key):
    started = time.monotonic()
    driver.get(edasd.base + "/console/#/signin")
    by_id(driver, "sign-in")
    STATE.setdefault("first_render_s", time.monotonic() - started)
    field = driver.find_element(By.NAME, "access-key-id")
    field.clear()
    field.send_keys(key[0])
    driver.find_element(By.NAME, "access-key-secret").send_keys(key[1])
    driver.find_element(By.ID, "sign-in").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "h1") and
         d.find_element(By.CSS_SELECTOR, "h1").text == "Applications", what="the application list")


def fill(driver, element_id, text):
    el = by_id(driver, element_id)
    el.clear()
    if text:
        el.send_keys(text)


def test_sign_in_and_the_signer_matches_the_reference_vector(edasd, browser):
    browser.get(edasd.base + "/console/")
    by_id(browser, "sign-in")
    shot(browser, "01-sign-in")
    # The worked example C of edas-api.md §4.2, signed by the console's own module.
    signature = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/console/js/sign.js').then((m) => m.authorization({
          method: 'POST', path: '/pop/v5/k8s/acs/k8s_apps',
          query: {AppId: 'e83acea6-0000-47e1-96ae-c0e953772cdc', ChangeOrderDesc: 'deploy v1 ~*',
                  CpuLimit: '1', EnableAhas: 'True', Envs: '[{"name":"x1","value":"y1"}]',
                  Image: 'registry.example.com/ns/app:v1', Replicas: '2',
                  UpdateStrategy: '{"type":"BatchUpdate","batchUpdate":{"batch":2,"releaseType":"auto","batchWaitTime":0}}'},
          headers: {accept: 'application/json', host: '127.0.0.1:8080',
                    'user-agent': 'AlibabaCloud (Linux; x86_64) Python/3.11.0 Core/0.4.3 TeaDSL/2',
                    'x-acs-action': 'DeployK8sApplication',
                    'x-acs-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
                    'x-acs-credentials-provider': 'static_ak', 'x-acs-date': '2026-01-01T00:00:00Z',
                    'x-acs-signature-nonce': '0123456789abcdef0123456789abcdef', 'x-acs-version': '2017-08-01'},
          keyId: 'testid', secret: 'testsecret'})).then(done, (e) => done('error: ' + e));
    """)
    assert signature.endswith(
        "Signature=6be0be9ed765951f15f60d4909698f04af2b08b60a2ea6fce49599ccabfc555a"), signature

    # A wrong secret is refused and nothing is kept.
    browser.find_element(By.NAME, "access-key-id").send_keys(ADMIN[0])
    browser.find_element(By.NAME, "access-key-secret").send_keys("not-the-secret-0123456789")
    browser.find_element(By.ID, "sign-in").click()
    alert = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.error"), what="the refusal")[0]
    assert "SignatureDoesNotMatch" in alert.text or "refused" in alert.text, alert.text
    assert browser.execute_script("return sessionStorage.length") == 0

    sign_in(browser, edasd, ADMIN)
    assert STATE["first_render_s"] < 1.0, f"the first page took {STATE['first_render_s']:.2f} s"
    (ARTIFACTS / "timings.txt").write_text(
        f"first page (sign-in form) rendered in {STATE['first_render_s'] * 1000:.0f} ms\n")
    # The key lives in this tab's sessionStorage only: no cookie, no localStorage.
    assert browser.get_cookies() == []
    assert browser.execute_script("return localStorage.length") == 0
    assert "administrator" in by_id(browser, "who-name").text
    drain_requests(browser)


def test_create_the_application_from_the_form(edasd, browser, tag):
    by_id(browser, "create-app").click()
    fill(browser, "f-name", "hello")
    Select(by_id(browser, "f-cluster")).select_by_value("local")
    fill(browser, "f-command", TESTAPP)
    fill(browser, "f-args", tag)
    fill(browser, "f-env", "APP_VERSION=v1")
    fill(browser, "f-replicas", "3")
    fill(browser, "f-readiness", READINESS)
    preview = by_id(browser, "params-preview").text
    assert "AppName=hello" in preview and "ClusterId=local" in preview and "Replicas=3" in preview, preview
    assert "edasctl app create hello" in by_id(browser, "cli-equivalent").text
    assert_accessible(browser)
    shot(browser, "02-create")
    by_id(browser, "create-submit").click()
    wait(browser, lambda d: "#/co/" in d.current_url, what="the change order page")
    wait_status(browser, {2}, 60)
    STATE["create_co"] = browser.current_url.rsplit("/", 1)[1]
    app_link = browser.find_element(By.CSS_SELECTOR, "dl.facts a")
    STATE["app"] = urllib.parse.unquote(app_link.get_attribute("href").rsplit("/", 1)[1])
    # The README's Service on a free port, created outside the console (the console shows it).
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        STATE["port"] = s.getsockname()[1]
    status, body = edasd.call("POST", "/pop/v5/k8s/acs/k8s_service", "CreateK8sService", {
        "AppId": STATE["app"], "Name": "hello", "Type": "ClusterIP",
        "ServicePorts": json.dumps([{"protocol": "TCP", "port": STATE["port"], "targetPort": 8080}])})
    assert status == 200, body
    for _ in range(100):
        _, info = edasd.call("POST", "/pop/v5/changeorder/change_order_info", "GetChangeOrderInfo",
                             {"ChangeOrderId": body["ChangeOrderId"]})
        if info["changeOrderInfo"]["Status"] == 2:
            break
        time.sleep(0.1)
    assert version_via_service(STATE["port"]) == "v1"


def version_via_service(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return r.read().decode().split()[0].removeprefix("version=")


def deploy_from_the_form(browser, edasd, version, gray, batches, percent=None, wait_minutes=None):
    browser.get(edasd.base + f"/console/#/app/{STATE['app']}")
    by_id(browser, "deploy").click()
    env = by_id(browser, "f-env")
    assert "APP_VERSION=" in env.get_attribute("value")
    fill(browser, "f-env", f"APP_VERSION={version}")
    fill(browser, "f-gray", str(gray))
    fill(browser, "f-batches", str(batches))
    manual = by_id(browser, "f-manual")
    if manual.is_selected() != (wait_minutes is None):
        manual.click()
    if wait_minutes is not None:
        fill(browser, "f-wait", str(wait_minutes))
    fill(browser, "f-percent", "" if percent is None else str(percent))
    preview = by_id(browser, "params-preview").text
    assert f'"value":"{version}"' in preview, preview
    assert '"grayUpdate":{"gray":%d}' % gray in preview, preview
    if wait_minutes is None:
        assert '"releaseType":"manual"' in preview, preview
    else:
        assert '"releaseType":"auto","batchWaitTime":%d' % wait_minutes in preview, preview
    assert_accessible(browser)
    by_id(browser, "deploy-submit").click()
    wait(browser, lambda d: "#/co/" in d.current_url, what="the live page")
    return browser.current_url.rsplit("/", 1)[1]


def application_traffic(browser, mode):
    """Switches to the application page (no reload: the console's own route) and waits for its
    traffic split to be `mode`; the shares' texts by role."""
    STATE["live"] = browser.execute_script("return location.hash")
    browser.execute_script("location.hash = arguments[0]", f"#/app/{STATE['app']}")

    def shares(d):
        # Read in one go: a release event may redraw the split in between (a stale element is retried).
        if d.find_element(By.ID, "traffic").get_attribute("data-mode") != mode:
            return None
        return {role: d.find_element(By.ID, f"traffic-{role}").text for role in ("gray", "stable")}
    return wait(browser, lambda d: d.find_elements(By.ID, "traffic") and shares(d), 30, f"the {mode} traffic split")


def back_to_live(browser):
    browser.execute_script("location.hash = arguments[0]", STATE["live"])
    wait(browser, lambda d: d.find_elements(By.ID, "live-state")
         and d.find_element(By.ID, "live-state").get_attribute("data-mode") == "stream", what="the live page again")
    # The stream replays the order's events, each redrawing the page once: let them land.
    time.sleep(1)


def test_the_gray_release_advances_live_and_continues(edasd, browser):
    deploy_from_the_form(browser, edasd, "v2", gray=1, batches=2, percent=20)
    browser.execute_script("window.__noReload = true")
    seen = []
    wait_status(browser, {8}, 60, seen)
    live = by_id(browser, "live-state")
    wait(browser, lambda d: live.get_attribute("data-mode") == "stream", what="the event stream")
    waiting = by_id(browser, "waiting-for").text
    assert "Waiting for your confirmation to start Batch 1" in waiting, waiting
    gray = browser.find_element(By.CSS_SELECTOR, "li.batch[data-status='2'] h3").text
    assert gray.startswith("Gray"), gray
    # While the gray batch waits, about 20 % of the requests reach v2.
    versions = [version_via_service(STATE["port"]) for _ in range(20)]
    assert 1 <= versions.count("v2") <= 8, versions
    assert_accessible(browser)
    shot(browser, "03-live-gray-waiting")
    # The application page shows the split next to the Services: 20 % to the gray revision.
    shares = application_traffic(browser, "GraySplit")
    assert re.fullmatch(r"Revision \d+ \(gray\): 20 % of requests \(1 ready instance\)", shares["gray"]), shares
    assert re.fullmatch(r"Revision \d+ \(stable\): 80 % of requests \(\d+ ready instances?\)", shares["stable"]), shares
    assert_accessible(browser)
    browser.execute_script("document.getElementById('traffic').scrollIntoView()")
    shot(browser, "03b-application-gray-split")
    back_to_live(browser)

    # Escape is "no": nothing happens.
    by_id(browser, "continue").click()
    dialog = by_id(browser, "confirm")
    wait(browser, lambda d: dialog.get_attribute("open") is not None, what="the dialog")
    assert browser.switch_to.active_element.get_attribute("id") == "confirm-cancel"
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(browser, lambda d: dialog.get_attribute("open") is None, what="the dialog to close")
    time.sleep(0.3)
    assert co_status(browser) == 8

    confirm(browser, "continue")
    wait(browser, lambda d: "Batch 2" in by_id(d, "waiting-for").text and co_status(d) == 8,
         60, "batch 2 waiting")
    shot(browser, "04-live-batch-2-waiting")
    confirm(browser, "continue")
    wait_status(browser, {2}, 60, seen)
    assert browser.execute_script("return window.__noReload === true"), "the page reloaded"
    # It advanced in front of us: in progress, waiting, in progress …, succeeded.
    assert seen[-1] == 2 and 8 in seen, seen
    batches = browser.find_elements(By.CSS_SELECTOR, "li.batch")
    assert [b.get_attribute("data-status") for b in batches] == ["2", "2", "2"]
    shot(browser, "05-live-succeeded")
    assert version_via_service(STATE["port"]) == "v2"
    drain_requests(browser)


def test_a_second_release_aborted_then_rolled_back_and_a_third_in_one_step(edasd, browser):
    deploy_from_the_form(browser, edasd, "v3", gray=1, batches=2)
    wait_status(browser, {8}, 60)
    confirm(browser, "abort")
    wait_status(browser, {6}, 30)
    notice = by_id(browser, "notice").text
    assert "Abort: done." in notice, notice
    assert version_via_service(STATE["port"]) == "v2"
    shot(browser, "06-aborted")
    shares = application_traffic(browser, "Aborted")
    assert re.fullmatch(r"Revision \d+ \(serving\): 100 % of requests \(\d+ ready instances?\)", shares["stable"]), shares
    assert shares["gray"].startswith("Revision ") and "(aborted): 0 % of requests" in shares["gray"], shares
    back_to_live(browser)
    confirm(browser, "rollback")
    rollback = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#notice a"), what="the rollback's link")[0]
    rollback.click()
    wait_status(browser, {2}, 60)

    deploy_from_the_form(browser, edasd, "v4", gray=1, batches=2)
    wait_status(browser, {8}, 60)
    confirm(browser, "abort-rollback")
    wait_status(browser, {6}, 30)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#notice a"), what="the rollback's link")[0].click()
    wait_status(browser, {2}, 60)
    assert version_via_service(STATE["port"]) == "v2"
    drain_requests(browser)


def test_an_automatic_release_counts_down_to_its_next_batch(edasd, browser):
    deploy_from_the_form(browser, edasd, "v6", gray=1, batches=2, wait_minutes=1)
    wait_status(browser, {9}, 60)
    clock = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#waiting-for .countdown"),
                 what="the countdown")[0]
    first = clock.text
    assert first.endswith(" s") and first.startswith(("1 min", "59", "58", "57", "56", "55")), first
    wait(browser, lambda d: clock.text != first, 5, "the countdown to tick")
    shot(browser, "06b-countdown")
    assert by_id(browser, "continue").text == "Start Batch 1 Change now"
    confirm(browser, "continue")
    wait(browser, lambda d: co_status(d) in (1, 9) and "Batch 1 Change starts" not in by_id(d, "waiting-for").text,
         60, "batch 1 to start before its wait ended")
    confirm(browser, "abort-rollback")
    wait_status(browser, {6}, 30)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#notice a"), what="the rollback's link")[0].click()
    wait_status(browser, {2}, 60)
    drain_requests(browser)


SECRET_VALUE = "s3cr3t-value-the-console-never-shows"


def test_the_application_page_and_an_instance_log_followed_live(edasd, browser):
    # The application uses a ConfigMap and a Secret (set up outside the console).
    for path, action, name, value in [
            ("/pop/v5/k8s/acs/k8s_config_map", "CreateK8sConfigMap", "hello-config", "plain"),
            ("/pop/v5/k8s/acs/k8s_secret", "CreateK8sSecret", "hello-secret", SECRET_VALUE)]:
        form = {"ClusterId": "local", "Namespace": "default", "Name": name,
                "Data": json.dumps([{"Key": f"{name}-key", "Value": value}])}
        if action == "CreateK8sSecret":
            form["Type"] = "Opaque"
        status, body = edasd.call("POST", path, action, form=form)
        assert status == 200, body
    status, body = edasd.call("POST", "/pop/v5/k8s/acs/k8s_apps", "DeployK8sApplication", {
        "AppId": STATE["app"], "EnvFroms": json.dumps([
            {"configMapRef": {"name": "hello-config"}}, {"secretRef": {"name": "hello-secret"}}])})
    assert status == 200, body
    wait_order(edasd, body["ChangeOrderId"], {2})

    browser.get(edasd.base + f"/console/#/app/{STATE['app']}")
    config = by_id(browser, "s-configmaps-and-secrets-in-use").find_element(By.XPATH, "..").text
    assert "hello-config" in config and "hello-secret" in config and "hello-secret-key" in config, config
    assert SECRET_VALUE not in browser.page_source
    by_id(browser, "s-instances")
    revisions = browser.find_elements(By.CSS_SELECTOR, "div.revision")
    assert revisions and all(r.get_attribute("data-revision") for r in revisions)
    assert "hello" in by_id(browser, "s-services-and-traffic").find_element(By.XPATH, "..").text
    assert by_id(browser, "traffic").get_attribute("data-mode") == "AllReady"
    log = by_id(browser, "log")
    instance = Select(by_id(browser, "log-instance")).first_selected_option.get_attribute("value")
    wait(browser, lambda d: "listening on" in log.text, 20, "the instance's output")
    # A line written now appears without reloading: the log is followed.
    port = None
    status, answer = edasd.call("GET", "/pop/v5/oam/app_instance_list", "DescribeAppInstanceList",
                                {"AppId": STATE["app"]})
    for i in answer["InstanceList"]:
        if i["InstanceName"] == instance:
            port = i["Port"]
    marker = f"console-follows-{int(time.time())}"
    urllib.request.urlopen(f"http://127.0.0.1:{port}/log?line={marker}", timeout=5).read()
    wait(browser, lambda d: marker in log.text, 20, "the new log line")
    assert_accessible(browser)
    browser.execute_script("arguments[0].scrollIntoView()", log)
    shot(browser, "07-application-log")

    # The instances follow the application's events: a scale from outside shows up by itself.
    browser.execute_script("window.__noReload = true")
    status, body = edasd.call("PUT", "/pop/v5/k8s/acs/k8s_apps", "ScaleK8sApplication",
                              {"AppId": STATE["app"], "Replicas": "4"})
    assert status == 200, body
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#instances tbody tr")) == 4,
         30, "the fourth instance on the page")
    assert browser.execute_script("return window.__noReload === true")
    wait_order(edasd, body["ChangeOrderId"], {2})

    # History: "Roll back to this revision" releases revision 2 (v1 with its Service) again.
    confirm(browser, "rollback-to-2")
    wait(browser, lambda d: "#/co/" in d.current_url, what="the rollback's live page")
    wait_status(browser, {2}, 60)
    assert version_via_service(STATE["port"]) == "v1"
    STATE["serving"] = "v1"
    drain_requests(browser)


def test_audit_filtered_by_application(edasd, browser):
    browser.get(edasd.base + "/console/#/audit")
    Select(by_id(browser, "audit-app")).select_by_value(STATE["app"])
    fill(browser, "audit-actor", "admin")
    browser.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
    wait(browser, lambda d: "record(s) shown" in by_id(d, "audit-records").text, what="the records")
    text = by_id(browser, "audit-records").text
    assert "AbortChangeOrder" in text or "ContinuePipeline" in text, text[:500]
    assert_accessible(browser)
    shot(browser, "08-audit")
    drain_requests(browser)


def wait_order(edasd, order, wanted, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, body = edasd.call("POST", "/pop/v5/changeorder/change_order_info", "GetChangeOrderInfo",
                             {"ChangeOrderId": order})
        info = body["changeOrderInfo"]
        if info["Status"] in wanted:
            return info
        time.sleep(0.1)
    raise AssertionError(f"change order {order} not in {wanted}: {info}")


def gray_release(edasd, version):
    """A gray + two manual batches release started outside the console; its change order."""
    status, body = edasd.call("POST", "/pop/v5/k8s/acs/k8s_apps", "DeployK8sApplication", {
        "AppId": STATE["app"], "Envs": json.dumps([{"name": "APP_VERSION", "value": version}]),
        "UpdateStrategy": json.dumps({"type": "GrayBatchUpdate", "grayUpdate": {"gray": 1},
                                      "batchUpdate": {"batch": 2, "releaseType": "manual"}})})
    assert status == 200, body
    return body["ChangeOrderId"]


def test_without_the_event_stream_the_live_page_asks_every_second(edasd, browser):
    order = gray_release(edasd, "v7")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/edasd/v1/events*"]})
    try:
        browser.get(edasd.base + f"/console/#/co/{order}")
        wait(browser, lambda d: by_id(d, "live-state").get_attribute("data-mode") == "poll",
             what="the polling fallback")
        wait_status(browser, {8}, 60)
        info = wait_order(edasd, order, {8})
        waiting = [p for p in info["PipelineInfoList"]["PipelineInfo"] if p["PipelineStatus"] == 8]
        status, body = edasd.call("GET", "/pop/v5/changeorder/pipeline_batch_confirm", "ContinuePipeline",
                                  {"PipelineId": waiting[0]["PipelineId"], "Confirm": "true"})
        assert status == 200, body
        wait(browser, lambda d: "Batch 2" in by_id(d, "waiting-for").text, 30, "batch 2 on the page")
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    status, body = edasd.call("PUT", "/pop/v5/changeorder/change_order_abort_and_rollback",
                              "AbortAndRollbackChangeOrder", {"ChangeOrderId": order})
    assert status == 200, body
    rollback = body["Data"]["ChangeOrderId"]
    if rollback != order:
        wait_order(edasd, rollback, {2})
    drain_requests(browser)


def test_a_failed_release_retried_then_rolled_back(edasd, browser):
    status, body = edasd.call("POST", "/pop/v5/k8s/acs/k8s_apps", "DeployK8sApplication", {
        "AppId": STATE["app"], "BatchTimeout": "2",
        "Envs": json.dumps([{"name": "APP_VERSION", "value": "bad"}, {"name": "NEVER_READY", "value": "1"}])})
    assert status == 200, body
    order = body["ChangeOrderId"]
    browser.get(edasd.base + f"/console/#/co/{order}")
    wait_status(browser, {3}, 60)
    reason = by_id(browser, "waiting-for").text
    assert reason.startswith("The change failed"), reason
    shot(browser, "08b-failed")
    confirm(browser, "retry")
    notice = wait(browser, lambda d: by_id(d, "notice").text, what="the retry's answer")
    assert "Retry: done." in notice, notice
    wait_status(browser, {3}, 60)
    confirm(browser, "rollback")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#notice a"), what="the rollback's link")[0].click()
    wait_status(browser, {2}, 60)
    assert version_via_service(STATE["port"]) == STATE["serving"]
    drain_requests(browser)


def test_a_read_only_user_cannot_act(edasd, browser):
    assert edasd.call("POST", "/edasd/v1/users", body={"Name": "reader"})[0] == 200
    assert edasd.call("PUT", "/edasd/v1/policies/read-only", body={"Document": {
        "Version": "1", "Statement": [{"Effect": "Allow", "Action": ["edas:ReadApplication"],
                                       "Resource": ["*"]}]}})[0] == 200
    assert edasd.call("PUT", "/edasd/v1/users/reader/policies/read-only")[0] == 200
    status, body = edasd.call("POST", "/edasd/v1/users/reader/keys",
                              body={"AccessKeyId": READONLY[0], "AccessKeySecret": READONLY[1]})
    assert status == 200, body
    # A release waiting for confirmation, started by the administrator.
    order = gray_release(edasd, "v5")

    by_id(browser, "sign-out").click()
    by_id(browser, "sign-in")
    sign_in(browser, edasd, READONLY)
    assert not browser.find_elements(By.ID, "create-app")
    browser.get(edasd.base + f"/console/#/co/{order}")
    wait_status(browser, {8}, 60)
    by_id(browser, "read-only")
    for button in ["continue", "abort", "abort-rollback", "rollback", "retry"]:
        assert not browser.find_elements(By.ID, button), button
    shot(browser, "09-read-only-live")
    browser.get(edasd.base + f"/console/#/app/{STATE['app']}")
    by_id(browser, "read-only")
    assert not browser.find_elements(By.ID, "deploy")
    assert not browser.find_elements(By.CSS_SELECTOR, "button[data-rollback]")
    # A forced call with the reader's key, from the page itself: refused by the server.
    refused = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/console/js/api.js').then((api) => api.call('AbortChangeOrder', {ChangeOrderId: arguments[0]}))
          .then(() => done('accepted'), (e) => done(e.code + ' ' + e.message));
    """, order)
    assert refused.startswith("AUTH_ERROR"), refused
    drain_requests(browser)
    # Clean up: the administrator aborts it.
    assert edasd.call("PUT", "/pop/v5/changeorder/change_order_abort", "AbortChangeOrder",
                      {"ChangeOrderId": order})[0] == 200


def test_on_a_phone(edasd, browser):
    by_id(browser, "sign-out").click()
    by_id(browser, "sign-in")
    browser.set_window_size(390, 844)
    sign_in(browser, edasd, ADMIN)
    try:
        for page, ready, name in [(f"co/{STATE['create_co']}", "change-order", "10-phone-live"),
                                  (f"app/{STATE['app']}", "instances", "11-phone-application"),
                                  (f"deploy/{STATE['app']}", "params-preview", "12-phone-deploy"),
                                  ("apps", "app-search", "13-phone-applications")]:
            browser.get(edasd.base + f"/console/#/{page}")
            by_id(browser, ready)
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            shot(browser, name)
            assert overflow <= 0, f"#/{page} is {overflow} px wider than the phone"
    finally:
        browser.set_window_size(1280, 900)
    drain_requests(browser)


def test_nothing_came_from_another_host_and_no_policy_was_broken(edasd, browser):
    drain_requests(browser)
    assert REQUESTS, "no request was logged"
    foreign = [u for u in REQUESTS
               if not u.startswith(edasd.base + "/") and not u.startswith(("data:", "about:", "blob:"))]
    assert not foreign, f"requests to other hosts: {foreign}"
    violations = [e["message"] for e in browser.get_log("browser")
                  if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
    assert not violations, violations
    (ARTIFACTS / "requests.txt").write_text("\n".join(REQUESTS) + "\n")
    # Trusted Types with no policy: the browser refuses HTML made from a string outright.
    refused = browser.execute_script("""
        try { document.getElementById('main').innerHTML = '<img src=x>'; return 'allowed'; }
        catch (e) { return e.name; }""")
    assert refused == "TypeError", refused
