// Words and times for what the API answers in codes and epoch milliseconds.

import { h } from "./dom.js";

export const STATUS = {
  0: ["Pending", "idle"],
  1: ["In progress", "info"],
  2: ["Succeeded", "ok"],
  3: ["Failed", "bad"],
  6: ["Aborted", "warn"],
  7: ["Partly succeeded", "warn"],
  8: ["Waiting for confirmation", "warn"],
  9: ["Waiting for the next batch", "info"],
  10: ["System failure", "bad"],
};

export const ACTIVE = new Set([0, 1, 8, 9]);

export function statusBadge(code) {
  const [text, kind] = STATUS[Number(code)] || [`Status ${code}`, "idle"];
  return h("span", { class: `badge ${kind}`, "data-status": String(code) }, text);
}

export function time(ms) {
  const n = Number(ms);
  if (!ms || !Number.isFinite(n) || n <= 0) return "";
  const d = new Date(n);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function timeEl(ms) {
  const n = Number(ms);
  if (!ms || !Number.isFinite(n) || n <= 0) return "";
  return h("time", { datetime: new Date(n).toISOString() }, time(n));
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m ? `${m} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}
