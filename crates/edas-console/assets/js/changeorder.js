// A change order, live: the gray batch and every batch with its progress and instances, what
// it waits for (confirmation, the countdown to the next automatic batch), and Continue, Abort,
// Abort and roll back, Rollback and Retry, each behind a confirmation step. It follows the
// release events of the order (`GET /edasd/v1/events`) and reads GetChangeOrderInfo again on
// each; where the stream is not available it asks every second instead.

import { call, canManage, followEvents, sleep } from "./api.js";
import { confirmAction, fill, h, link, notify } from "./dom.js";
import { ACTIVE, STATUS, duration, statusBadge, timeEl } from "./format.js";

export async function changeOrder(main, signal, id) {
  let info = (await call("GetChangeOrderInfo", { ChangeOrderId: id })).changeOrderInfo;
  const mayManage = await canManage(info.AppId);
  if (signal.aborted) return;

  const live = h("p", { class: "live", id: "live-state", "aria-live": "polite" });
  const view = h("div", { id: "change-order", "data-status": String(info.Status) });
  fill(main, h("p", { class: "small" }, link("← Application", "app", info.AppId)), live, view);

  let countdown = null;
  const draw = () => {
    clearInterval(countdown);
    view.dataset.status = String(info.Status);
    fill(view, ...render(info, mayManage, act));
    const clock = view.querySelector("[data-until]");
    if (clock) {
      const tick = () => {
        const left = (Number(clock.dataset.until) - Date.now()) / 1000;
        clock.textContent = left > 0 ? duration(left) : "any moment";
      };
      tick();
      countdown = setInterval(tick, 1000);
    }
  };
  signal.addEventListener("abort", () => clearInterval(countdown), { once: true });

  let pending = null;
  const refresh = async () => {
    // One read at a time; events arriving meanwhile make one more read afterwards.
    if (pending) {
      pending.again = true;
      return;
    }
    pending = { again: false };
    try {
      do {
        pending.again = false;
        const next = (await call("GetChangeOrderInfo", { ChangeOrderId: id })).changeOrderInfo;
        if (signal.aborted) return;
        info = next;
        draw();
      } while (pending.again);
    } catch (e) {
      if (!signal.aborted) notify("error", e.describe ? e.describe() : String(e));
    } finally {
      pending = null;
    }
  };

  async function act(label, action, params, text, danger) {
    const ok = await confirmAction(`${label}?`, text, label, danger);
    if (!ok || signal.aborted) return;
    try {
      const answer = await call(action, params);
      const next = answer.Data?.ChangeOrderId && answer.Data.ChangeOrderId !== id ? answer.Data.ChangeOrderId : null;
      notify("ok", `${label}: done.`, answer.Data?.Traffic ? ` ${answer.Data.Traffic}` : "",
        next ? h("span", {}, " The rollback runs as ", link("its own change order", "co", next), ".") : "");
      await refresh();
    } catch (e) {
      notify("error", `${label} was refused: `, e.describe ? e.describe() : String(e));
    }
  }

  draw();
  // Live updates: the event stream, or polling when this edasd has none.
  (async () => {
    try {
      await followEvents({ ChangeOrderId: id }, () => refresh(), signal, (state) => {
        live.textContent = state === "live" ? "Live: following the release events." : "Reconnecting to the event stream…";
        live.dataset.mode = "stream";
      });
    } catch (e) {
      if (signal.aborted) return;
      live.textContent = "Live: asking every second (no event stream: " + (e.code || e) + ").";
      live.dataset.mode = "poll";
      while (!signal.aborted) {
        await sleep(1000, signal);
        if (!signal.aborted) await refresh();
      }
    }
  })();
}

function pipelines(info) {
  return info.PipelineInfoList?.PipelineInfo || [];
}

/** The batch waiting to start (status 8 or 9), running or failed: the order's current batch. */
function currentIndex(list) {
  const i = list.findIndex((p) => [1, 3, 6, 8, 9, 10].includes(Number(p.PipelineStatus)));
  return i;
}

function render(info, mayManage, act) {
  const status = Number(info.Status);
  const list = pipelines(info);
  const current = currentIndex(list);
  const header = [
    h("h1", {}, `${info.CoType || "Change order"} `, statusBadge(status)),
    h("dl", { class: "facts" },
      h("dt", {}, "Change order"), h("dd", { class: "mono" }, info.ChangeOrderId),
      h("dt", {}, "Application"), h("dd", {}, link((info.Targets?.Items || []).join(", ") || info.AppId, "app", info.AppId)),
      h("dt", {}, "By"), h("dd", {}, info.CreateUserId || ""),
      h("dt", {}, "Created"), h("dd", {}, timeEl(info.CreateTime)),
      info.FinishTime ? [h("dt", {}, "Finished"), h("dd", {}, timeEl(info.FinishTime))] : null,
      h("dt", {}, "Batches"), h("dd", {}, `${info.BatchCount} (${info.BatchType || ""})`),
      info.Desc ? [h("dt", {}, "Description"), h("dd", {}, info.Desc)] : null),
  ];
  return [
    header,
    waitingFor(info, list, current),
    mayManage ? actions(info, list, current, act) : h("p", { class: "muted small", id: "read-only" }, "You may watch this change but not act on it."),
    h("h2", {}, "Batches"),
    h("ol", { class: "batches" }, list.map((p, i) => batch(p, i === current && ACTIVE.has(status)))),
  ];
}

function waitingFor(info, list, current) {
  const status = Number(info.Status);
  const next = list[current];
  let text;
  if (status === 8) {
    text = [`Waiting for your confirmation to start ${next?.PipelineName || "the next batch"}.`];
  } else if (status === 9) {
    const until = Number(info.NextBatchTime || 0);
    text = until
      ? [`${next?.PipelineName || "The next batch"} starts automatically in `, h("span", { class: "countdown", "data-until": String(until) }), "."]
      : [`${next?.PipelineName || "The next batch"} starts automatically after the batch wait.`];
  } else if (status === 1 || status === 0) {
    const task = runningTask(next);
    text = [`${next?.PipelineName || "A batch"} is running`, task ? `: ${task}` : "."];
  } else if (status === 2) {
    text = ["The change succeeded."];
  } else if (status === 3 || status === 10) {
    text = [`The change failed: ${failure(list) || info.Desc || "see the batches below"}.`];
  } else if (status === 6) {
    text = [`The change was aborted${info.Desc ? `: ${info.Desc}` : "."}`];
  } else {
    text = [STATUS[status]?.[0] || `Status ${status}`];
  }
  const kind = status === 8 ? "warn" : status === 3 || status === 10 ? "error" : status === 2 ? "ok" : "info";
  return h("div", { class: `msg ${kind} waiting`, id: "waiting-for" }, ...text);
}

function runningTask(p) {
  for (const s of p?.StageDetailList?.StageDetailDTO || []) {
    for (const t of s.TaskList?.TaskInfoDTO || []) {
      if (String(t.TaskStatus) === "1") return t.TaskMessage || t.TaskName;
    }
  }
  return "";
}

function failedTask(list) {
  for (const p of list) {
    for (const s of p.StageDetailList?.StageDetailDTO || []) {
      for (const t of s.TaskList?.TaskInfoDTO || []) {
        if (["3", "10"].includes(String(t.TaskStatus))) return t;
      }
    }
  }
  return null;
}

function failure(list) {
  const t = failedTask(list);
  return t ? t.TaskErrorMessage || t.TaskMessage : "";
}

function actions(info, list, current, act) {
  const status = Number(info.Status);
  const id = info.ChangeOrderId;
  const buttons = [];
  const next = list[current];
  if ((status === 8 || status === 9) && next) {
    // Waiting for confirmation, or for the automatic wait to end: either way it may start now.
    buttons.push(h("button", {
      type: "button", class: "primary", id: "continue",
      onclick: () => act(`Continue with ${next.PipelineName}`, "ContinuePipeline",
        { PipelineId: next.PipelineId, Confirm: "true" },
        `${next.PipelineName} starts now${status === 9 ? ", without waiting any longer" : ""}: its new instances start and the same number of old ones stop.`),
    }, status === 9 ? `Start ${next.PipelineName} now` : `Continue: start ${next.PipelineName}`));
  }
  if (ACTIVE.has(status)) {
    buttons.push(h("button", {
      type: "button", id: "abort",
      onclick: () => act("Abort", "AbortChangeOrder", { ChangeOrderId: id },
        "The release stops where it stands and all traffic goes back to the revision that served before it. The new instances stay, without traffic, until a rollback or a new deploy.", true),
    }, "Abort"));
    buttons.push(h("button", {
      type: "button", class: "danger", id: "abort-rollback",
      onclick: () => act("Abort and roll back", "AbortAndRollbackChangeOrder", { ChangeOrderId: id },
        "The release stops and a rollback to the previous revision starts at once as a new change order.", true),
    }, "Abort and roll back"));
  }
  if ((status === 3 || status === 6 || status === 10) && info.SupportRollback) {
    buttons.push(h("button", {
      type: "button", class: "danger", id: "rollback",
      onclick: () => act("Roll back", "RollbackChangeOrder", { ChangeOrderId: id },
        "The application goes back to the revision before this change, as a new change order.", true),
    }, "Roll back"));
  }
  const failed = failedTask(list);
  if ((status === 3 || status === 10) && failed) {
    buttons.push(h("button", {
      type: "button", id: "retry",
      onclick: () => act("Retry", "RetryChangeOrderTask", { TaskId: failed.TaskId, RetryStatus: "true" },
        `The failed step (${failed.TaskName}) runs again.`),
    }, "Retry"));
  }
  return buttons.length ? h("div", { class: "actions", role: "group", "aria-label": "Decisions" }, buttons) : null;
}

function batch(p, isCurrent) {
  const stages = p.StageDetailList?.StageDetailDTO || [];
  const done = stages.filter((s) => Number(s.StageStatus) === 2).length;
  const instances = new Map();
  for (const s of p.StageList?.StageInfoDTO || []) {
    for (const i of s.StageResultDTO?.InstanceDTOList?.InstanceDTO || []) instances.set(i.InstanceName, i);
  }
  const name = p.PipelineName || "Batch";
  const id = `b-${p.PipelineId}`;
  return h("li", { class: `batch${isCurrent ? " current" : ""}`, "aria-labelledby": id, "data-pipeline": p.PipelineId, "data-status": String(p.PipelineStatus) },
    h("header", {},
      h("h3", { id }, name), statusBadge(p.PipelineStatus),
      p.StartTime ? h("span", { class: "muted small" }, "started ", timeEl(p.StartTime)) : null),
    h("div", {},
      h("progress", { max: String(stages.length || 1), value: String(done), "aria-label": `${name}: ${done} of ${stages.length} steps done` }),
      h("span", { class: "small" }, ` ${done} of ${stages.length} steps`)),
    h("ul", { class: "small" }, stages.map((s) => {
      const task = (s.TaskList?.TaskInfoDTO || [])[0];
      const msg = task?.TaskErrorMessage || task?.TaskMessage || "";
      return h("li", {}, statusBadge(s.StageStatus), " ", task?.TaskName || s.StageName, msg ? ` — ${msg}` : "");
    })),
    instances.size
      ? h("ul", { class: "small instances" }, [...instances.values()].map((i) =>
        h("li", {}, h("span", { class: "mono" }, i.InstanceName), " ", i.PodStatus || "", " ", statusBadge(i.Status))))
      : null);
}
