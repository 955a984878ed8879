// The console's entry point: the session, the navigation and the hash router
// (#/apps, #/app/ID, #/co/ID, #/deploy/ID, #/create, #/audit, #/signin).

import { credentials, forget, resetSession, whoAmI } from "./api.js";
import { clearNotice, fill, h } from "./dom.js";
import { available } from "./sign.js";
import { signIn } from "./signin.js";
import { applications } from "./apps.js";
import { application } from "./app.js";
import { changeOrder } from "./changeorder.js";
import { deploy, create } from "./deploy.js";
import { audit } from "./audit.js";

const main = document.getElementById("main");
let cleanup = null;

const PAGES = {
  apps: () => applications,
  app: () => application,
  co: () => changeOrder,
  deploy: () => deploy,
  create: () => create,
  audit: () => audit,
};

async function render() {
  if (cleanup) {
    cleanup.abort();
    cleanup = null;
  }
  const [name, ...args] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const signedIn = credentials();
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  if (!available()) {
    fill(main, h("h1", {}, "edasd console"), h("div", { class: "msg error", role: "alert" },
      "This page is not a secure context, so the browser offers no WebCrypto to sign requests with. ",
      "Open the console over https (edasd --tls-cert/--tls-key) or on 127.0.0.1."));
    return;
  }
  if (!signedIn || name === "signin") {
    cleanup = new AbortController();
    signIn(main, cleanup.signal, () => {
      if (location.hash === "#/apps") render();
      else location.hash = "#/apps";
    });
    return;
  }
  document.getElementById("who-name").textContent = signedIn.id;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === (name === "audit" ? "audit" : "apps")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const page = (PAGES[name] || PAGES.apps)();
  cleanup = new AbortController();
  fill(main, h("p", { class: "loading" }, "Loading…"));
  try {
    const me = await whoAmI();
    document.getElementById("who-name").textContent = `${signedIn.id}${me.admin ? " (administrator)" : ""}`;
    await page(main, cleanup.signal, ...args);
  } catch (e) {
    if (cleanup?.signal.aborted) return;
    fill(main, h("h1", {}, "Something went wrong"),
      h("div", { class: "msg error", role: "alert" }, e.describe ? e.describe() : String(e)));
  }
}

document.getElementById("sign-out").addEventListener("click", () => {
  forget();
  resetSession();
  clearNotice();
  if (location.hash === "#/signin") render();
  else location.hash = "#/signin";
});

window.addEventListener("hashchange", () => {
  clearNotice();
  render().then(() => main.focus({ preventScroll: true }));
});
render();
