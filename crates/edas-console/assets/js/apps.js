// Applications: cluster, namespace, current revision, instances ready/desired, the change order
// running now; filtered by a search box and the cluster.

import { call, canCreate } from "./api.js";
import { fill, h, link, route, table } from "./dom.js";
import { ACTIVE, statusBadge } from "./format.js";

export async function applications(main, signal) {
  const list = await call("ListApplication", { PageSize: 1000 });
  const apps = list.ApplicationList?.Application || [];
  // Per application: its revision and its latest change order (both cheap reads).
  const details = await Promise.all(apps.map(async (a) => {
    const [app, orders] = await Promise.all([
      call("GetK8sApplication", { AppId: a.AppId }).catch(() => null),
      call("ListRecentChangeOrder", { AppId: a.AppId }).catch(() => null),
    ]);
    const running = (orders?.ChangeOrderList?.ChangeOrder || []).find((o) => ACTIVE.has(Number(o.Status)));
    return { revision: app?.Applcation?.Edasd?.Revision ?? "", running };
  }));
  if (signal.aborted) return;
  const rows = apps.map((a, i) => ({ app: a, ...details[i] }));
  const clusters = [...new Set(apps.map((a) => a.ClusterId))].sort();

  const search = h("input", { type: "search", id: "app-search", placeholder: "Name, id or namespace" });
  const cluster = h("select", { id: "app-cluster" },
    h("option", { value: "" }, "All clusters"),
    clusters.map((c) => h("option", { value: c }, c)));
  const count = h("p", { class: "muted small", "aria-live": "polite" });
  const body = h("div");
  const show = () => {
    const q = search.value.trim().toLowerCase();
    const shown = rows.filter(({ app }) =>
      (!cluster.value || app.ClusterId === cluster.value) &&
      (!q || [app.Name, app.AppId, app.K8sNamespace, app.NamespaceId].some((v) => String(v || "").toLowerCase().includes(q))));
    count.textContent = `${shown.length} of ${rows.length} application(s)`;
    fill(body, table("", ["Name", "Cluster", "Namespace", "Revision", "Instances ready/desired", "Change order", "State"],
      shown.map(({ app, revision, running }) => [
        link(app.Name, "app", app.AppId),
        app.ClusterId,
        app.K8sNamespace,
        revision === "" ? "" : `r${revision}`,
        `${app.RunningInstanceCount} / ${app.Instances}`,
        running ? h("span", {}, link(running.CoType || "Change", "co", running.ChangeOrderId), " ", statusBadge(running.Status)) : h("span", { class: "muted" }, "none"),
        app.State,
      ]), rows.length ? "No application matches." : "No applications yet."));
  };
  search.addEventListener("input", show, { signal });
  cluster.addEventListener("change", show, { signal });
  show();
  const mayCreate = await canCreate();
  if (signal.aborted) return;
  fill(main,
    h("h1", {}, "Applications"),
    h("div", { class: "toolbar" },
      h("div", {}, h("label", { for: "app-search" }, "Search"), search),
      h("div", {}, h("label", { for: "app-cluster" }, "Cluster"), cluster),
      mayCreate ? h("a", { class: "button primary", href: route("create"), id: "create-app" }, "Create application") : null),
    count,
    body);
}
