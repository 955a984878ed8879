// One application: its instances per revision, Services and the live traffic split, the
// ConfigMaps and Secrets it uses (never a Secret's values), its history with "roll back to this
// revision", its change orders, and an instance's log followed live.

import { ApiError, call, canManage, followEvents, followLogs } from "./api.js";
import { confirmAction, fill, h, link, notify, route, table } from "./dom.js";
import { ACTIVE, statusBadge, timeEl } from "./format.js";

export async function application(main, signal, appId) {
  const [got, instances, history, services, orders] = await Promise.all([
    call("GetK8sApplication", { AppId: appId }),
    call("DescribeAppInstanceList", { AppId: appId }),
    call("ListHistoryDeployVersion", { AppId: appId }),
    call("GetK8sServices", { AppId: appId }).catch((e) => e),
    call("ListRecentChangeOrder", { AppId: appId }).catch(() => null),
  ]);
  const mayManage = await canManage(appId);
  if (signal.aborted) return;
  const a = got.Applcation || {};
  const app = a.App || {};
  const edasd = a.Edasd || {};
  const insts = instances.InstanceList || [];
  const versions = history.PackageVersionList?.PackageVersion || [];
  const changeOrders = orders?.ChangeOrderList?.ChangeOrder || [];
  const running = changeOrders.find((o) => ACTIVE.has(Number(o.Status)));

  const facts = h("dl", { class: "facts" },
    fact("Application ID", h("span", { class: "mono" }, appId)),
    fact("Cluster", app.ClusterId),
    fact("Namespace", app.K8sNamespace),
    fact("State", edasd.State || ""),
    fact("Current revision", edasd.Revision !== undefined ? `r${edasd.Revision}` : ""),
    fact("Instances", `${insts.filter((i) => i.Ready).length} ready of ${app.Instances ?? "?"} desired`),
    fact("Runs", a.ImageInfo?.ImageUrl || app.Cmd || ""),
    running ? fact("Change order running", h("span", {}, link(running.CoType || "Change", "co", running.ChangeOrderId), " ", statusBadge(running.Status))) : null);

  const actions = h("div", { class: "actions" },
    mayManage && !running ? h("a", { class: "button primary", href: route("deploy", appId), id: "deploy" }, "Deploy") : null,
    running ? h("a", { class: "button primary", href: route("co", running.ChangeOrderId), id: "live" }, "Watch the running change") : null,
    !mayManage ? h("p", { class: "muted small", id: "read-only" }, "You may read this application but not change it.") : null);

  const instancesBox = h("div", { id: "instances" }, instancesByRevision(insts));
  const servicesBox = h("div", { id: "services" }, servicesView(services, insts));
  fill(main,
    h("p", { class: "small" }, link("← Applications", "apps")),
    h("h1", {}, app.ApplicationName || appId),
    facts,
    actions,
    section("Instances", instancesBox),
    section("Services and traffic", servicesBox),
    section("ConfigMaps and Secrets in use", await configView(app, appId)),
    section("History", historyView(versions, appId, mayManage && !running, signal)),
    section("Change orders", table("", ["Change", "Status", "By", "Created", "Batches"],
      changeOrders.map((o) => [
        link(o.CoType || o.CoTypeCode || "Change", "co", o.ChangeOrderId),
        statusBadge(o.Status),
        o.CreateUserId || "",
        o.CreateTime || "",
        `${o.BatchCount ?? ""} ${o.BatchType || ""}`,
      ]))),
    section("Logs", logsView(insts, appId, signal)));
  followInstances(appId, instancesBox, servicesBox, signal);
}

/**
 * Keeps the instances and the traffic split current: each release event of the application
 * reads them again.
 */
function followInstances(appId, box, servicesBox, signal) {
  let reading = false;
  let again = false;
  const refresh = async () => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      do {
        again = false;
        const [answer, services] = await Promise.all([
          call("DescribeAppInstanceList", { AppId: appId }),
          call("GetK8sServices", { AppId: appId }).catch((e) => e),
        ]);
        if (signal.aborted) return;
        const insts = answer.InstanceList || [];
        fill(box, instancesByRevision(insts));
        fill(servicesBox, servicesView(services, insts));
      } while (again);
    } catch {
      // The next event tries again.
    } finally {
      reading = false;
    }
  };
  followEvents({ AppId: appId }, refresh, signal).catch(() => {
    // No event stream here: the instances stay as they were read.
  });
}

function fact(name, value) {
  return [h("dt", {}, name), h("dd", {}, value ?? "")];
}

function section(title, ...content) {
  const id = "s-" + title.toLowerCase().replace(/[^a-z]+/g, "-");
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...content);
}

function instanceState(i) {
  if (i.Failed) return h("span", { class: "badge bad" }, "Failed");
  let phase = "";
  try {
    phase = JSON.parse(i.PodRaw || "{}").status?.phase || "";
  } catch {
    phase = "";
  }
  if (i.Ready) return h("span", { class: "badge ok" }, "Ready");
  return h("span", { class: "badge warn" }, phase ? `${phase}, not ready` : "Not ready");
}

function instancesByRevision(insts) {
  if (!insts.length) return h("p", { class: "muted" }, "No instances.");
  const byRevision = new Map();
  for (const i of insts) {
    const key = String(i.Revision);
    if (!byRevision.has(key)) byRevision.set(key, []);
    byRevision.get(key).push(i);
  }
  const revisions = [...byRevision.keys()].sort((x, y) => Number(y) - Number(x));
  return revisions.map((r) => {
    const list = byRevision.get(r);
    const ready = list.filter((i) => i.Ready).length;
    return h("div", { class: "revision", "data-revision": r },
      h("h3", {}, `Revision ${r}`, " ", h("span", { class: "muted small" }, `${ready} of ${list.length} ready`),
        list.some((i) => i.Canary) ? h("span", { class: "badge info" }, "gray") : null),
      table("", ["Instance", "Status", "Restarts", "Reason", "Address"],
        list.map((i) => [
          h("span", { class: "mono" }, i.InstanceName),
          instanceState(i),
          String(i.Restarts ?? 0),
          i.Failed || i.LastExitReason || "",
          i.Port ? `${i.Ip}:${i.Port}` : i.Ip || "",
        ])));
  });
}

function servicesView(services, insts) {
  if (services instanceof ApiError) return h("p", { class: "muted" }, services.describe());
  const list = services.Services || [];
  return [
    table("", ["Service", "Type", "Ports"], list.map((s) => [
      s.Name,
      s.Type || "",
      (s.ServicePorts || []).map((p) => `${p.Port} → ${p.TargetPort}/${p.Protocol}`).join(", "),
    ]), "No Services."),
    list.length ? trafficView(services.Traffic, insts) : null,
  ];
}

/**
 * Where the Services send requests now: GetK8sServices' `Traffic` (edasd's extension, the
 * routing the engine applies), with the ready instances of each revision behind it.
 */
function trafficView(traffic, insts) {
  const ready = insts.filter((i) => i.Ready);
  const byRevision = new Map();
  for (const i of ready) byRevision.set(String(i.Revision), (byRevision.get(String(i.Revision)) || 0) + 1);
  const readyOf = (r) => byRevision.get(String(r)) || 0;
  const mode = traffic?.Mode || "";
  const stable = traffic?.StableRevision;
  const gray = traffic?.GrayRevision;
  let summary;
  let shares = [];
  if (mode === "GraySplit") {
    const rules = traffic.Rules || [];
    const onePercent = rules.length === 1 && rules[0].ConditionType === "percent";
    const percent = onePercent ? Math.min(100, Math.max(0, Number(rules[0].Percent) || 0)) : null;
    summary = "Gray split: the release's traffic rule decides which revision serves a request.";
    shares = [
      share("traffic-gray", `Revision ${gray} (gray)`,
        onePercent ? `${percent} % of requests` : `requests matching ${rules.map(describeRule).join(", or ")}`,
        percent, readyOf(gray)),
      share("traffic-stable", `Revision ${stable} (stable)`,
        onePercent ? `${100 - percent} % of requests` : "every other request",
        onePercent ? 100 - percent : null, readyOf(stable)),
    ];
  } else if (mode === "Aborted") {
    summary = `Aborted release: 100 % of requests go to revision ${stable}; the instances of revision ${gray} stay but get none.`;
    shares = [
      share("traffic-stable", `Revision ${stable} (serving)`, "100 % of requests", 100, readyOf(stable)),
      share("traffic-gray", `Revision ${gray} (aborted)`, "0 % of requests", 0, readyOf(gray)),
    ];
  } else if (mode === "AllReady") {
    summary = "No split: requests spread over all ready instances of every revision.";
    const total = ready.length;
    shares = [...byRevision.entries()].sort((x, y) => Number(y[0]) - Number(x[0])).map(([r, n]) =>
      h("li", { "data-revision": r },
        `Revision ${r}: ${n} of ${total} ready instance(s)`, " ",
        h("meter", { min: 0, max: total, value: n, "aria-label": `Revision ${r} share of ready instances` })));
  } else {
    summary = "This server does not say how traffic is split; requests reach the ready instances.";
  }
  return h("div", { id: "traffic", "data-mode": mode, "aria-live": "polite" },
    h("h3", {}, "Live traffic split"),
    h("p", { id: "traffic-summary" }, summary),
    shares.length ? h("ul", {}, shares) : h("p", { class: "muted small" }, "No ready instance."));
}

/** One revision's share: its role, what it gets (a meter for a percentage) and its ready instances. */
function share(id, who, what, percent, readyCount) {
  return h("li", { id },
    `${who}: ${what}`,
    percent !== null ? [" ", h("meter", { min: 0, max: 100, value: percent, "aria-label": `${who} share of requests, percent` })] : null,
    " ", h("span", { class: "muted small" }, `(${readyCount} ready instance${readyCount === 1 ? "" : "s"})`));
}

/** A rule of `TrafficControlStrategy` in words. */
function describeRule(rule) {
  if (rule.ConditionType === "percent") return `${Number(rule.Percent) || 0} % of requests`;
  const conditions = (rule.Conditions || []).map((c) =>
    `${c.Type} ${c.Name} ${c.Operator === "regex" ? "matching" : "="} ${c.Value}`);
  return conditions.length ? conditions.join(" and ") : "the rule";
}

async function configView(app, appId) {
  const query = { ClusterId: app.ClusterId, Namespace: app.K8sNamespace, ShowRelatedApps: "true" };
  const [maps, secrets] = await Promise.all([
    call("ListK8sConfigMaps", query).catch((e) => e),
    call("ListK8sSecrets", query).catch((e) => e),
  ]);
  const uses = (item) => (item.RelatedApps || []).some((r) => r.AppId === appId);
  const rows = [];
  const problems = [];
  for (const [kind, answer, key] of [["ConfigMap", maps, "ConfigMaps"], ["Secret", secrets, "Secrets"]]) {
    if (answer instanceof ApiError) {
      problems.push(`${kind}s: ${answer.describe()}`);
      continue;
    }
    for (const item of answer.Result?.[key] || []) {
      if (!uses(item)) continue;
      // Only the keys: a Secret's values are never shown (nor a ConfigMap's, which may be long).
      rows.push([kind, item.Name, (item.Data || []).map((d) => d.Key).join(", ")]);
    }
  }
  return [
    table("", ["Kind", "Name", "Keys"], rows, "This application uses no ConfigMap or Secret."),
    problems.map((p) => h("p", { class: "muted small" }, p)),
  ];
}

function historyView(versions, appId, mayRollBack, signal) {
  return table("", ["Revision", "Change", "By", "When", "Outcome", ""],
    versions.map((v) => [
      `r${v.Revision}${v.Current ? " (current)" : ""}`,
      v.ChangeOrderId ? link(v.Description || "change", "co", v.ChangeOrderId) : v.Description || "",
      v.Creator || "",
      timeEl(v.CreateTime),
      v.Outcome || "",
      mayRollBack && !v.Current
        ? h("button", {
          type: "button",
          id: `rollback-to-${v.Revision}`,
          "data-rollback": String(v.Revision),
          onclick: async () => {
            const ok = await confirmAction(
              `Roll back to revision ${v.Revision}?`,
              `This releases revision ${v.Revision}'s whole configuration again as a new revision, in one batch.`,
              `Roll back to r${v.Revision}`, true);
            if (!ok || signal.aborted) return;
            try {
              const r = await call("DeployK8sApplication", { AppId: appId, RollbackToRevision: v.Revision });
              location.hash = route("co", r.ChangeOrderId);
            } catch (e) {
              notify("error", e.describe ? e.describe() : String(e));
            }
          },
        }, "Roll back to this revision")
        : "",
    ]), "No history.");
}

function logsView(insts, appId, signal) {
  if (!insts.length) return h("p", { class: "muted" }, "No instance to read.");
  const pick = h("select", { id: "log-instance" },
    insts.map((i) => h("option", { value: i.InstanceName }, `${i.InstanceName} (r${i.Revision})`)));
  const follow = h("input", { type: "checkbox", id: "log-follow", checked: true });
  const previous = h("input", { type: "checkbox", id: "log-previous" });
  const out = h("pre", { class: "log", id: "log", tabindex: "0", "aria-label": "Log output", "aria-live": "off" });
  const state = h("p", { class: "muted small", id: "log-state", "aria-live": "polite" });
  let current = null;
  const start = () => {
    current?.abort();
    current = new AbortController();
    const mine = current;
    signal.addEventListener("abort", () => mine.abort(), { once: true });
    out.textContent = "";
    const query = { AppId: appId, InstanceName: pick.value, TailLines: 500 };
    if (previous.checked) query.Previous = "true";
    else if (follow.checked) query.Follow = "true";
    state.textContent = query.Follow ? "Following…" : "Reading…";
    followLogs(query, (text) => {
      const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 8;
      out.append(text);
      if (atEnd) out.scrollTop = out.scrollHeight;
    }, mine.signal).then(
      () => { if (!mine.signal.aborted) state.textContent = query.Follow ? "The run ended." : "End of the log."; },
      (e) => { if (!mine.signal.aborted) state.textContent = e.describe ? e.describe() : String(e); },
    );
  };
  for (const el of [pick, follow, previous]) el.addEventListener("change", start, { signal });
  queueMicrotask(start);
  return [
    h("div", { class: "toolbar" },
      h("div", {}, h("label", { for: "log-instance" }, "Instance"), pick),
      h("label", { class: "check" }, follow, "Follow live"),
      h("label", { class: "check" }, previous, "Previous run")),
    state,
    out,
  ];
}
