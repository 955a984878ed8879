// Sign-in: an edasd user's access key, checked with one signed call and kept in this tab's
// sessionStorage only (gone when the tab closes; never in a cookie, never sent).

import { ApiError, call, forget, resetSession, saveCredentials } from "./api.js";
import { field, fill, h, message } from "./dom.js";

export function signIn(main, signal, done) {
  const id = h("input", { name: "access-key-id", autocomplete: "username", required: true, spellcheck: "false" });
  const secret = h("input", { name: "access-key-secret", type: "password", autocomplete: "current-password", required: true });
  const status = h("div", { "aria-live": "assertive" });
  const submit = h("button", { type: "submit", class: "primary", id: "sign-in" }, "Sign in");
  const form = h("form", { class: "signin", novalidate: true },
    field("Access key ID", id),
    field("Access key secret", secret,
      "The secret stays in this browser tab: it signs each request here and is never sent."),
    status,
    h("div", { class: "buttons" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!id.value.trim() || !secret.value) {
      fill(status, message("error", "Enter the access key ID and its secret."));
      return;
    }
    submit.disabled = true;
    fill(status, message("info", "Checking the key…"));
    saveCredentials(id.value.trim(), secret.value);
    resetSession();
    try {
      await call("ListApplication", { PageSize: 1 });
      done();
    } catch (e) {
      forget();
      const text = e instanceof ApiError && /AccessKey|Signature|InvalidAccessKeyId/i.test(e.code)
        ? `The key was refused: ${e.describe()}`
        : `Could not sign in: ${e.describe ? e.describe() : e}`;
      fill(status, message("error", text));
      submit.disabled = false;
    }
  }, { signal });
  fill(main,
    h("h1", {}, "Sign in to edasd"),
    h("p", {}, "Use the access key of an edasd user. What you may see and do is what its policies allow."),
    form);
  id.focus();
}
