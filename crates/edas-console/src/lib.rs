//! edasd's web console, served at `/console/` from files embedded in the binary.
//!
//! The console is plain HTML, CSS and JavaScript modules written by hand (`assets/`): there is
//! no build step and no JavaScript toolchain, and nothing is loaded from another host. It is
//! just another client of the signed EDAS API and edasd's admin API: the browser signs every
//! call itself (`ACS3-HMAC-SHA256` with WebCrypto) with the access key the user signs in with,
//! kept in the tab's `sessionStorage` only, so the same RAM policies apply as to the SDKs and
//! `edasctl`. Loading the console needs no authentication (it holds no data); every API call
//! it makes does.
//!
//! Every answer carries a strict Content-Security-Policy ([`CONTENT_SECURITY_POLICY`]: only
//! this origin's scripts, styles, images and connections, no inline script or style, no
//! framing), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and an `ETag`
//! (`Cache-Control: no-cache`, so a new edasd's console is picked up at once while an
//! unchanged file costs a 304).
//!
//! **Invariant:** serves only the embedded files, read-only, to `GET`/`HEAD`; knows nothing of
//! the API (no edasd crate dependency), and never answers data.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The policy every console answer carries: nothing but this origin, no inline code, no
/// plugins, no framing, forms post nowhere else; and Trusted Types with no policy, so the
/// browser itself refuses any HTML or script made from a string (`innerHTML`, `eval` …).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'none'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// Where the console is served.
pub const PREFIX: &str = "/console/";

/// One embedded file: its path under `/console/`, content type and bytes.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $type:expr,)*) => {
        /// Every file of the console, as embedded at build time.
        pub const ASSETS: &[Asset] = &[$(Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)),
        },)*];
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

assets! {
    "index.html" => HTML,
    "console.css" => CSS,
    "favicon.svg" => "image/svg+xml",
    "js/main.js" => JS,
    "js/sign.js" => JS,
    "js/api.js" => JS,
    "js/dom.js" => JS,
    "js/format.js" => JS,
    "js/signin.js" => JS,
    "js/apps.js" => JS,
    "js/app.js" => JS,
    "js/changeorder.js" => JS,
    "js/deploy.js" => JS,
    "js/audit.js" => JS,
}

/// The console's routes: `/console` redirects to `/console/`, which is `index.html`; every
/// other path under it is an embedded file or 404.
pub fn router() -> Router {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent(PREFIX) }))
        .route("/console/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                serve(&path, &headers)
            }),
        )
}

/// The embedded file at `path` (relative to `/console/`), if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{:016x}\"", fnv1a(a.bytes)))
            .collect()
    })
}

/// FNV-1a, 64 bits: enough to tell two versions of a file apart for caching.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return with_policy(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not a file of the console\n",
            )
                .into_response(),
        );
    };
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_policy(response)
}

fn with_policy(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_type_and_content() {
        for a in ASSETS {
            assert!(!a.bytes.is_empty(), "{} is empty", a.path);
            let ext = a.path.rsplit('.').next().unwrap();
            let expected = match ext {
                "html" => HTML,
                "js" => JS,
                "css" => CSS,
                "svg" => "image/svg+xml",
                other => panic!("no content type for .{other}"),
            };
            assert_eq!(a.content_type, expected, "{}", a.path);
        }
    }

    #[test]
    fn etags_differ_per_content() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(etags().len(), ASSETS.len());
    }
}
