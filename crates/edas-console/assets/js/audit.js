// The audit trail (`GET /edasd/v1/audit`), filtered by application, actor and time. The whole
// trail is for administrators; anyone else reads one application's (edas:ReadApplication).

import { admin, call, whoAmI } from "./api.js";
import { field, fill, h, link, message, table } from "./dom.js";
import { timeEl } from "./format.js";

export async function audit(main, signal) {
  const [list, me] = await Promise.all([call("ListApplication", { PageSize: 1000 }), whoAmI()]);
  if (signal.aborted) return;
  const apps = list.ApplicationList?.Application || [];
  const names = new Map(apps.map((a) => [a.AppId, a.Name]));
  // The whole trail is for administrators; anyone else reads one application's at a time.
  const app = h("select", { id: "audit-app" },
    me.admin ? h("option", { value: "" }, "All applications") : null,
    apps.map((a) => h("option", { value: a.AppId }, a.Name)));
  const actor = h("input", { id: "audit-actor", type: "search", placeholder: "user or access key" });
  const from = h("input", { id: "audit-from", type: "datetime-local" });
  const to = h("input", { id: "audit-to", type: "datetime-local" });
  const out = h("div", { id: "audit-records", "aria-live": "polite" });
  const form = h("form", { class: "toolbar", role: "search" },
    field("Application", app), field("Actor", actor), field("From", from), field("To", to),
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Show")));
  const load = async () => {
    const query = { PageSize: 500 };
    if (app.value) query.AppId = app.value;
    if (from.value) query.From = new Date(from.value).toISOString();
    if (to.value) query.To = new Date(to.value).toISOString();
    fill(out, h("p", { class: "loading" }, "Loading…"));
    try {
      const answer = await admin("GET", "/edasd/v1/audit", query);
      if (signal.aborted) return;
      const who = actor.value.trim().toLowerCase();
      const records = (answer.Records || []).filter((r) => !who || String(r.Actor || "").toLowerCase().includes(who));
      fill(out,
        h("p", { class: "muted small" }, `${records.length} record(s) shown of ${answer.TotalCount ?? records.length}.`),
        table("", ["When", "Actor", "Action", "Application", "Detail", "RequestId"], records.map((r) => [
          timeEl(r.TimeMillis),
          r.Actor || "",
          r.Action || "",
          r.AppId ? link(names.get(r.AppId) || r.AppId, "app", r.AppId) : r.Resource || "",
          h("code", {}, r.Detail === null || r.Detail === undefined ? "" : JSON.stringify(r.Detail)),
          h("span", { class: "mono small" }, r.RequestId || ""),
        ]), "No record matches."));
    } catch (e) {
      fill(out, message("error", e.describe ? e.describe() : String(e)));
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  }, { signal });
  fill(main, h("h1", {}, "Audit"), form, out);
  await load();
}
