// The Deploy form (DeployK8sApplication's common parameters: image or package, env, replicas,
// gray count, batches, manual/automatic, batch wait, traffic rule) and the Create form
// (InsertK8sApplication). Each shows the exact parameters it will send, and the edasctl and
// Python SDK equivalents of the same call.

import { call, canCreate, canManage } from "./api.js";
import { field, fill, h, link, message, route } from "./dom.js";

function input(name, attrs = {}) {
  return h("input", { name, id: `f-${name}`, ...attrs });
}

/** `NAME=value` lines → `[{"name","value"}]`, or an error naming the line. */
function parseEnv(text) {
  const out = [];
  for (const [n, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const i = line.indexOf("=");
    if (i <= 0) throw new Error(`Environment line ${n + 1} is not NAME=value`);
    out.push({ name: line.slice(0, i).trim(), value: line.slice(i + 1) });
  }
  return out;
}

function int(el) {
  return el.value.trim() === "" ? null : Number(el.value);
}

/** The parameters as the form describes them (only what the user set), or throws. */
function releaseParams(f) {
  const p = {};
  const gray = int(f.gray) || 0;
  const batches = int(f.batches) || 1;
  const manual = f.manual.checked;
  const wait = int(f.wait) || 0;
  if (gray > 0 || batches > 1) {
    const batchUpdate = { batch: batches, releaseType: manual ? "manual" : "auto" };
    if (!manual && wait > 0) batchUpdate.batchWaitTime = wait;
    p.UpdateStrategy = JSON.stringify(gray > 0
      ? { type: "GrayBatchUpdate", batchUpdate, grayUpdate: { gray } }
      : { type: "BatchUpdate", batchUpdate });
  }
  const percent = int(f.percent);
  if (percent !== null && percent > 0) {
    if (gray <= 0) throw new Error("A traffic rule needs a gray batch (gray instances > 0).");
    p.TrafficControlStrategy = JSON.stringify({ http: { rules: [{ conditionType: "percent", percent }] } });
  }
  return p;
}

function quote(s) {
  return "'" + String(s).replace(/'/g, "'\\''") + "'";
}

function equivalents(action, params) {
  const sdkName = action.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
  const lines = Object.entries(params).map(([k, v]) => `--param ${quote(`${k}=${v}`)}`);
  const edasctl = action === "DeployK8sApplication"
    ? `edasctl deploy ${params.AppId} ${lines.filter((l) => !l.startsWith("--param 'AppId=")).join(" ")}`
    : `edasctl app create ${params.AppName} --cluster ${params.ClusterId} ${lines.filter((l) => !/^--param '(AppName|ClusterId)=/.test(l)).join(" ")}`;
  const sdk = [
    "from alibabacloud_edas20170801.client import Client",
    "from alibabacloud_edas20170801 import models",
    "from alibabacloud_tea_openapi.models import Config",
    `client = Client(Config(access_key_id=..., access_key_secret=..., endpoint='${location.host}', protocol='${location.protocol.replace(":", "")}'))`,
    `client.${sdkName}(models.${action}Request(`,
    ...Object.entries(params).map(([k, v]) =>
      `    ${k.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()).replace(/_i_d$/, "_id")}=${JSON.stringify(String(v))},`),
    "))",
  ].join("\n");
  return [
    h("h3", {}, "edasctl"),
    h("pre", { id: "cli-equivalent" }, edasctl),
    h("h3", {}, "Python SDK (Tea)"),
    h("pre", {}, sdk),
  ];
}

function preview(action, params) {
  return [
    h("h2", {}, "What it will send"),
    h("p", { class: "small muted" }, `${action}, signed in this tab:`),
    h("pre", { id: "params-preview" }, Object.entries(params).map(([k, v]) => `${k}=${v}`).join("\n")),
    ...equivalents(action, params),
  ];
}

function releaseFieldset(f) {
  return h("fieldset", {},
    h("legend", {}, "Release"),
    h("div", { class: "grid2" },
      field("Gray instances", f.gray, "Instances of a first gray batch (0: none)."),
      field("Batches", f.batches, "After the gray batch, the rest in this many batches."),
      h("div", { class: "field" }, h("label", { class: "check" }, f.manual, "Manual: wait for my confirmation before each next batch")),
      field("Minutes between automatic batches", f.wait),
      field("Gray traffic share (%)", f.percent, "The gray revision's share of requests while its batch runs or waits (TrafficControlStrategy)."),
    ));
}

function releaseInputs() {
  return {
    gray: input("gray", { type: "number", min: "0", value: "0", inputmode: "numeric" }),
    batches: input("batches", { type: "number", min: "1", value: "1", inputmode: "numeric" }),
    manual: input("manual", { type: "checkbox", checked: true }),
    wait: input("wait", { type: "number", min: "0", max: "1440", value: "0", inputmode: "numeric" }),
    percent: input("percent", { type: "number", min: "0", max: "100", value: "", inputmode: "numeric" }),
  };
}

function envText(app) {
  return (app?.EnvList?.Env || []).map((e) => `${e.Name}=${e.Value}`).join("\n");
}

function wire(form, build, action, out, status, signal, submitted) {
  const update = () => {
    try {
      fill(out, ...preview(action, build()));
      return true;
    } catch (e) {
      fill(out, message("error", e.message));
      return false;
    }
  };
  form.addEventListener("input", update, { signal });
  form.addEventListener("change", update, { signal });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!update()) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    fill(status, message("info", "Sending…"));
    try {
      const answer = await call(action, build());
      submitted(answer);
    } catch (e) {
      fill(status, message("error", e.describe ? e.describe() : String(e)));
      button.disabled = false;
    }
  }, { signal });
  update();
}

export async function deploy(main, signal, appId) {
  const got = await call("GetK8sApplication", { AppId: appId });
  const may = await canManage(appId);
  if (signal.aborted) return;
  const app = got.Applcation?.App || {};
  if (!may) {
    fill(main, h("h1", {}, `Deploy ${app.ApplicationName || appId}`),
      message("error", "You may not change this application."));
    return;
  }
  const f = {
    image: input("image", { placeholder: got.Applcation?.ImageInfo?.ImageUrl || "registry.example.com/ns/app:v2" }),
    pkg: input("package", { type: "url", placeholder: "the URL of a FatJar or War" }),
    env: h("textarea", { name: "env", id: "f-env", rows: "4", spellcheck: "false" }),
    replicas: input("replicas", { type: "number", min: "0", value: String(app.Instances ?? ""), inputmode: "numeric" }),
    desc: input("desc"),
    ...releaseInputs(),
  };
  f.env.value = envText(app);
  const build = () => {
    const p = { AppId: appId };
    if (f.image.value.trim()) p.Image = f.image.value.trim();
    if (f.pkg.value.trim()) p.PackageUrl = f.pkg.value.trim();
    const env = parseEnv(f.env.value);
    if (f.env.value.trim() !== envText(app).trim()) p.Envs = JSON.stringify(env);
    const replicas = int(f.replicas);
    if (replicas !== null && replicas !== app.Instances) p.Replicas = replicas;
    Object.assign(p, releaseParams(f));
    if (f.desc.value.trim()) p.ChangeOrderDesc = f.desc.value.trim();
    return p;
  };
  const out = h("div", { id: "preview" });
  const status = h("div", { "aria-live": "assertive" });
  const form = h("form", { id: "deploy-form", novalidate: true },
    h("fieldset", {},
      h("legend", {}, "What runs"),
      field("Image", f.image, "Leave empty to keep what runs now."),
      field("Package URL", f.pkg, "Instead of an image: a package to run (with its JDK)."),
      field("Environment (NAME=value, one per line)", f.env, "Edit to deploy a new environment; unchanged, it is not sent."),
      field("Instances", f.replicas)),
    releaseFieldset(f),
    field("Description", f.desc),
    status,
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary", id: "deploy-submit" }, "Deploy")));
  wire(form, build, "DeployK8sApplication", out, status, signal, (answer) => {
    location.hash = route("co", answer.ChangeOrderId);
  });
  fill(main,
    h("p", { class: "small" }, link("← Application", "app", appId)),
    h("h1", {}, `Deploy ${app.ApplicationName || appId}`),
    h("div", { class: "grid2" }, form, out));
}

export async function create(main, signal) {
  const [may, clusters] = await Promise.all([
    canCreate(),
    call("ListCluster", {}).catch(() => null),
  ]);
  if (signal.aborted) return;
  if (!may) {
    fill(main, h("h1", {}, "Create an application"), message("error", "You may not create applications."));
    return;
  }
  const ids = (clusters?.ClusterList?.Cluster || []).map((c) => c.ClusterId);
  const f = {
    name: input("name", { required: true, autocomplete: "off", spellcheck: "false" }),
    cluster: h("select", { name: "cluster", id: "f-cluster" },
      (ids.length ? ids : ["local"]).map((c) => h("option", { value: c }, c))),
    image: input("image", { placeholder: "registry.example.com/ns/app:v1" }),
    command: input("command", { placeholder: "/usr/local/bin/app (cluster local)", spellcheck: "false" }),
    args: h("textarea", { name: "args", id: "f-args", rows: "2", spellcheck: "false" }),
    env: h("textarea", { name: "env", id: "f-env", rows: "3", spellcheck: "false" }),
    replicas: input("replicas", { type: "number", min: "0", value: "1", inputmode: "numeric" }),
    readiness: input("readiness", { spellcheck: "false", placeholder: '{"httpGet":{"path":"/ready","port":8080},"periodSeconds":1}' }),
  };
  const build = () => {
    const p = { AppName: f.name.value.trim(), ClusterId: f.cluster.value };
    if (!p.AppName) throw new Error("Give the application a name.");
    if (f.image.value.trim()) p.ImageUrl = f.image.value.trim();
    if (f.command.value.trim()) p.Command = f.command.value.trim();
    const args = f.args.value.split("\n").map((a) => a.trim()).filter(Boolean);
    if (args.length) p.CommandArgs = JSON.stringify(args.map((argument) => ({ argument })));
    const env = parseEnv(f.env.value);
    if (env.length) p.Envs = JSON.stringify(env);
    if (int(f.replicas) !== null) p.Replicas = int(f.replicas);
    if (f.readiness.value.trim()) p.Readiness = f.readiness.value.trim();
    return p;
  };
  const out = h("div", { id: "preview" });
  const status = h("div", { "aria-live": "assertive" });
  const form = h("form", { id: "create-form", novalidate: true },
    field("Name", f.name),
    field("Cluster", f.cluster),
    field("Image", f.image, "Or, on the cluster local, a command:"),
    field("Command", f.command),
    field("Arguments (one per line)", f.args),
    field("Environment (NAME=value, one per line)", f.env),
    field("Instances", f.replicas),
    field("Readiness probe (JSON)", f.readiness),
    status,
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary", id: "create-submit" }, "Create")));
  wire(form, build, "InsertK8sApplication", out, status, signal, (answer) => {
    location.hash = route("co", answer.ApplicationInfo.ChangeOrderId);
  });
  fill(main,
    h("p", { class: "small" }, link("← Applications", "apps")),
    h("h1", {}, "Create an application"),
    h("div", { class: "grid2" }, form, out));
  f.name.focus();
}
