// Building the page: elements are created one by one and text is always set as text
// (textContent / text nodes), never parsed as HTML, so nothing an API answer carries can run.

/** `h("a", {href: "#/apps"}, "Applications")`: attributes as strings, children as text or nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "value") {
      el.value = value;
    } else if (name === "checked" || name === "selected" || name === "disabled") {
      el[name] = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link inside the console (`#/…`) with every part of the path encoded. */
export function link(text, ...parts) {
  return h("a", { href: route(...parts) }, text);
}

export function route(...parts) {
  return "#/" + parts.map((p) => encodeURIComponent(p)).join("/");
}

/** A table; `rows` are arrays of cells (text or nodes). Labels repeat on phones (data-label). */
export function table(caption, headers, rows, empty = "None.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", { class: "stack" },
      caption ? h("caption", { class: "muted small" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((row) => h("tr", {},
        row.map((cell, i) => h("td", { "data-label": headers[i] }, cell)))))));
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl);
}

export function message(kind, ...text) {
  return h("div", { class: `msg ${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}

/** Shows a short notice at the top of the page (announced to screen readers). */
export function notify(kind, ...text) {
  const box = document.getElementById("notice");
  fill(box, message(kind, ...text));
}

export function clearNotice() {
  document.getElementById("notice").replaceChildren();
}

/**
 * The confirmation step of every action: a modal dialog (Escape or Cancel says no). Resolves
 * true only when the user confirms.
 */
export function confirmAction(title, text, okLabel, danger = false) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const ok = document.getElementById("confirm-ok");
  ok.textContent = okLabel;
  ok.className = danger ? "danger" : "primary";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}
