//! The console's router: every embedded file with its content type and the security headers,
//! the redirect, 404 and revalidation; and the files themselves: all embedded, nothing from
//! another host, no inline code, no HTML built from text.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

async fn get(path: &str, if_none_match: Option<&str>) -> axum::response::Response {
    let mut request = Request::get(path);
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    edas_console::router()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn header_of(response: &axum::response::Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

fn assert_policy(response: &axum::response::Response) {
    let csp = header_of(response, header::CONTENT_SECURITY_POLICY);
    assert_eq!(csp, edas_console::CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(
        header_of(response, header::X_CONTENT_TYPE_OPTIONS),
        "nosniff"
    );
    assert_eq!(header_of(response, header::REFERRER_POLICY), "no-referrer");
    assert_eq!(header_of(response, header::X_FRAME_OPTIONS), "DENY");
}

#[tokio::test]
async fn every_file_is_served_with_its_type_and_the_policy() {
    let cases = [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/index.html", "text/html; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/js/main.js", "text/javascript; charset=utf-8"),
        ("/console/js/sign.js", "text/javascript; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ];
    for (path, content_type) in cases {
        let response = get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            content_type,
            "{path}"
        );
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        assert_policy(&response);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(!body.is_empty(), "{path}");
    }
    for asset in edas_console::ASSETS {
        let response = get(&format!("/console/{}", asset.path), None).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", asset.path);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            asset.content_type
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], asset.bytes);
    }
}

#[tokio::test]
async fn redirect_not_found_and_revalidation() {
    let response = get("/console", None).await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header_of(&response, header::LOCATION), "/console/");

    for path in ["/console/nope.js", "/console/../Cargo.toml", "/console/js/"] {
        let response = get(path, None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "text/plain; charset=utf-8"
        );
        assert_policy(&response);
    }

    let first = get("/console/js/api.js", None).await;
    let tag = header_of(&first, header::ETAG).to_owned();
    let again = get("/console/js/api.js", Some(&tag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_policy(&again);
    let other = get("/console/js/dom.js", None).await;
    assert_ne!(header_of(&other, header::ETAG), tag);
}

fn asset_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

fn files(dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            let rel = path.strip_prefix(asset_dir()).unwrap();
            out.push(rel.to_str().unwrap().to_owned());
        }
    }
}

#[test]
fn every_file_under_assets_is_embedded() {
    let mut on_disk = Vec::new();
    files(&asset_dir(), &mut on_disk);
    on_disk.sort();
    let mut embedded: Vec<String> = edas_console::ASSETS
        .iter()
        .map(|a| a.path.to_owned())
        .collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
}

#[test]
fn nothing_comes_from_another_host_and_no_text_becomes_code() {
    for asset in edas_console::ASSETS {
        let text = std::str::from_utf8(asset.bytes).unwrap();
        // The SVG namespace is a name, not a fetch.
        let text = text.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        for host in ["http://", "https://", "//cdn", "@import", "url("] {
            assert!(
                !text.contains(host),
                "{} names another host or fetches ({host})",
                asset.path
            );
        }
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setTimeout(\"",
            "javascript:",
        ] {
            assert!(!text.contains(sink), "{} uses {sink}", asset.path);
        }
    }
    let index = std::str::from_utf8(edas_console::asset("index.html").unwrap().bytes).unwrap();
    for tag in index.split("<script").skip(1) {
        let (open, rest) = tag.split_once('>').unwrap();
        assert!(
            open.contains("src=\"/console/"),
            "inline script: <script{open}>"
        );
        assert!(rest.starts_with("</script>"), "a script with a body");
    }
    assert!(!index.contains("<style"), "inline style");
    assert!(!index.contains(" style=\""), "style attribute");
}
