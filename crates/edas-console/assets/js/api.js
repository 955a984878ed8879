// The signed API, as the console uses it: EDAS operations (method + path, parameters in the
// query, or a form body for the ConfigMap/Secret writes), edasd's admin API (JSON), and the two
// streams (release events as server-sent events, an instance's log as text). Every request is
// signed in this tab with the key the user signed in with; the server applies its RAM policies.

import { acsDate, authorization, nonce, rfc3986, sha256Hex } from "./sign.js";

const KEY = "edasd.console.key";
const VERSION = "2017-08-01";

/** The EDAS operations the console calls: method and path (edas-api.md §1.1). */
export const OPERATIONS = {
  ListApplication: ["POST", "/pop/v5/app/app_list"],
  GetK8sApplication: ["GET", "/pop/v5/changeorder/co_application"],
  InsertK8sApplication: ["POST", "/pop/v5/k8s/acs/create_k8s_app"],
  DeployK8sApplication: ["POST", "/pop/v5/k8s/acs/k8s_apps"],
  DescribeAppInstanceList: ["GET", "/pop/v5/oam/app_instance_list"],
  ListHistoryDeployVersion: ["GET", "/pop/v5/app/deploy_history_version_list"],
  GetK8sServices: ["GET", "/pop/v5/k8s/acs/k8s_service"],
  ListK8sConfigMaps: ["GET", "/pop/v5/k8s/acs/k8s_config_map"],
  ListK8sSecrets: ["GET", "/pop/v5/k8s/acs/k8s_secret"],
  ListRecentChangeOrder: ["POST", "/pop/v5/changeorder/change_order_list"],
  GetChangeOrderInfo: ["POST", "/pop/v5/changeorder/change_order_info"],
  ContinuePipeline: ["GET", "/pop/v5/changeorder/pipeline_batch_confirm"],
  AbortChangeOrder: ["PUT", "/pop/v5/changeorder/change_order_abort"],
  AbortAndRollbackChangeOrder: ["PUT", "/pop/v5/changeorder/change_order_abort_and_rollback"],
  RollbackChangeOrder: ["PUT", "/pop/v5/oam/changeorder/rollback"],
  RetryChangeOrderTask: ["GET", "/pop/v5/changeorder/task_retry"],
  ListCluster: ["POST", "/pop/v5/resource/cluster_list"],
};

/** An answer in the EDAS error envelope (or a transport failure, code `NetworkError`). */
export class ApiError extends Error {
  constructor(code, message, requestId, status) {
    super(message || code);
    this.code = code;
    this.requestId = requestId || "";
    this.status = status || 0;
  }
  /** Refused by the RAM policies (not a problem with the request itself). */
  get refused() {
    return this.code === "AUTH_ERROR" || this.code === "Forbidden" || this.status === 403;
  }
  describe() {
    return `${this.code}: ${this.message}${this.requestId ? ` (RequestId ${this.requestId})` : ""}`;
  }
}

export function credentials() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return saved && saved.id && saved.secret ? saved : null;
  } catch {
    return null;
  }
}

export function saveCredentials(id, secret) {
  sessionStorage.setItem(KEY, JSON.stringify({ id, secret }));
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

/** A signed fetch. `query` and `headers` are plain objects; `body` a string or undefined. */
async function signedFetch(method, path, { query = {}, headers = {}, body, signal, key } = {}) {
  const creds = key || credentials();
  if (!creds) throw new ApiError("NotSignedIn", "sign in first");
  const bytes = body === undefined ? new Uint8Array() : new TextEncoder().encode(body);
  const signed = {
    accept: "application/json",
    host: location.host,
    "x-acs-date": acsDate(),
    "x-acs-signature-nonce": nonce(),
    "x-acs-content-sha256": await sha256Hex(bytes),
    "x-acs-version": VERSION,
    ...headers,
  };
  const auth = await authorization({
    method,
    path,
    query,
    headers: signed,
    keyId: creds.id,
    secret: creds.secret,
  });
  const sent = { ...signed, authorization: auth };
  delete sent.host; // the browser sends it (and may not be told to)
  const qs = Object.keys(query)
    .sort()
    .map((k) => `${rfc3986(k)}=${rfc3986(String(query[k]))}`)
    .join("&");
  try {
    return await fetch(path + (qs ? "?" + qs : ""), {
      method,
      headers: sent,
      body: body === undefined ? undefined : bytes,
      signal,
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError("NetworkError", `edasd did not answer: ${e.message}`);
  }
}

async function envelope(response) {
  let body = null;
  const text = await response.text();
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError("BadAnswer", `HTTP ${response.status}: ${text.slice(0, 200)}`, "", response.status);
  }
  if (!response.ok || (typeof body.Code === "string" && body.Code !== "200")) {
    throw new ApiError(String(body.Code || response.status), body.Message, body.RequestId, response.status);
  }
  return body;
}

/** Calls an EDAS operation with its parameters (strings or numbers); the answer's JSON. */
export async function call(action, params = {}, options = {}) {
  const [method, path] = OPERATIONS[action];
  const query = {};
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null) query[k] = String(v);
  }
  const response = await signedFetch(method, path, {
    query,
    headers: { "x-acs-action": action },
    ...options,
  });
  return envelope(response);
}

/** edasd's admin API: `GET /edasd/v1/audit?…` and friends. */
export async function admin(method, path, query = {}, json) {
  const options = { query };
  if (json !== undefined) {
    options.body = JSON.stringify(json);
    options.headers = { "content-type": "application/json" };
  }
  return envelope(await signedFetch(method, path, options));
}

/**
 * Follows the server-sent events of `GET /edasd/v1/events?…` (signed, so read with fetch, not
 * EventSource), calling `onEvent({id, event, data})`; reconnects after `LastEventId` when the
 * connection drops. Resolves when `signal` aborts; rejects only if the first connection is
 * refused (no stream on this edasd, or no right), so the caller can fall back to polling.
 */
export async function followEvents(query, onEvent, signal, onState = () => {}) {
  let last = null;
  let first = true;
  while (!signal.aborted) {
    let response;
    try {
      const q = { ...query };
      if (last !== null) q.LastEventId = last;
      response = await signedFetch("GET", "/edasd/v1/events", { query: q, signal, headers: {} });
    } catch (e) {
      if (signal.aborted) return;
      if (first) throw e;
      onState("reconnecting");
      await sleep(1000, signal);
      continue;
    }
    if (!response.ok || !(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
      const error = await envelope(response).then(
        () => new ApiError("BadAnswer", "not an event stream"),
        (e) => e,
      );
      if (first) throw error;
      onState("reconnecting");
      await sleep(1000, signal);
      continue;
    }
    first = false;
    onState("live");
    try {
      await readLines(response.body, signal, (() => {
        let message = { id: null, event: "message", data: "" };
        return (line) => {
          if (line === "") {
            if (message.data !== "") {
              if (message.id !== null) last = message.id;
              onEvent(message);
            }
            message = { id: null, event: "message", data: "" };
          } else if (line.startsWith(":")) {
            // keep-alive comment
          } else {
            const i = line.indexOf(":");
            const field = i < 0 ? line : line.slice(0, i);
            const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
            if (field === "id") message.id = value;
            else if (field === "event") message.event = value;
            else if (field === "data") message.data += (message.data ? "\n" : "") + value;
          }
        };
      })());
    } catch (e) {
      if (signal.aborted) return;
    }
    if (!signal.aborted) {
      onState("reconnecting");
      await sleep(500, signal);
    }
  }
}

/** Reads an instance's output from `GET /edasd/v1/logs`, calling `onText` with each chunk. */
export async function followLogs(query, onText, signal) {
  const response = await signedFetch("GET", "/edasd/v1/logs", { query, signal, headers: {} });
  if (!response.ok) await envelope(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      onText(decoder.decode(value, { stream: true }));
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

async function readLines(body, signal, onLine) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const stop = () => reader.cancel().catch(() => {});
  signal.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let i;
      while ((i = buffer.search(/\r?\n/)) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(buffer[i] === "\r" ? i + 2 : i + 1);
        onLine(line);
      }
    }
  } finally {
    signal.removeEventListener("abort", stop);
  }
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

// ---- What the signed-in user may do -------------------------------------------------------
//
// Administrators may do everything (the admin API answers them). For anyone else the console
// asks the server with a probe that changes nothing: the operation with a parameter that can
// never be valid. edasd authorizes before it validates, so `AUTH_ERROR` means "not allowed"
// and any other refusal "allowed". The answers are remembered for the session's tab.

let who = null;
const probes = new Map();

/** `{admin: bool}` of the signed-in key (cached). */
export async function whoAmI() {
  if (who) return who;
  try {
    await admin("GET", "/edasd/v1/users");
    who = { admin: true };
  } catch (e) {
    if (!(e instanceof ApiError) || e.code === "NetworkError") throw e;
    who = { admin: false };
  }
  return who;
}

export function resetSession() {
  who = null;
  probes.clear();
}

async function probe(name, action, params) {
  if ((await whoAmI()).admin) return true;
  if (!probes.has(name)) {
    probes.set(
      name,
      call(action, params).then(
        () => true,
        (e) => !(e instanceof ApiError && e.refused),
      ),
    );
  }
  return probes.get(name);
}

/** May the user change this application (deploy, roll back, continue/abort its releases)? */
export function canManage(appId) {
  return probe(`manage:${appId}`, "DeployK8sApplication", { AppId: appId, Replicas: "-1" });
}

/** May the user create applications (in the default namespace)? */
export function canCreate() {
  return probe("create", "InsertK8sApplication", { Replicas: "-1" });
}
