// ACS3-HMAC-SHA256 request signing (edas-api.md §4.2) with WebCrypto. The secret never leaves
// this tab: it keys an HMAC here and is sent nowhere. WebCrypto exists only in a secure context
// (https, or http on 127.0.0.1 / localhost), so the console refuses to sign elsewhere.

const encoder = new TextEncoder();

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** RFC 3986 encoding: only A-Z a-z 0-9 - _ . ~ stay as they are (space is %20). */
export function rfc3986(value) {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

/** The query as the server canonicalises it: keys sorted, values RFC 3986 encoded. */
export function canonicalQuery(params) {
  return Object.keys(params)
    .sort()
    .map((k) => `${k}=${rfc3986(String(params[k]))}`)
    .join("&");
}

export function available() {
  return Boolean(globalThis.crypto && crypto.subtle && window.isSecureContext);
}

export async function sha256Hex(data) {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

async function hmacHex(secret, message) {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return hex(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
}

/** `x-acs-date`: UTC, seconds precision. */
export function acsDate(now = new Date()) {
  return now.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * The Authorization header of a request. `headers` (lower-case names) are all signed, so they
 * must be exactly what the browser sends: `host` is the page's host, which fetch sends itself.
 * `x-acs-content-sha256` must already be among them.
 */
export async function authorization({ method, path, query, headers, keyId, secret }) {
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${String(headers[n]).trim()}\n`).join("");
  const signedHeaders = names.join(";");
  const canonicalRequest = [
    method,
    path || "/",
    canonicalQuery(query || {}),
    canonicalHeaders,
    signedHeaders,
    headers["x-acs-content-sha256"],
  ].join("\n");
  const stringToSign = "ACS3-HMAC-SHA256\n" + (await sha256Hex(canonicalRequest));
  const signature = await hmacHex(secret, stringToSign);
  return `ACS3-HMAC-SHA256 Credential=${keyId},SignedHeaders=${signedHeaders},Signature=${signature}`;
}

/** A fresh random nonce (32 hex digits). */
export function nonce() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return hex(bytes);
}
