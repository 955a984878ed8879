//! Property tests of the verifier against tampering and hostile shapes (beside
//! `tests/props.rs`, which covers arbitrary input and the sign → verify round trip): a signed
//! request changed in any part the signature covers never verifies, whatever was signed; and
//! oversized, duplicated or contradictory signature material is refused with an error, never a
//! panic. Fixed case counts and no failure files, so CI runs the same cases every time.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::{NonceCache, Request, parse, sign_v1, sign_v3, verify};

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

const SECRET: &str = "fuzz-secret-0123456789";

/// Rebuilds a request from its parts (the only way to replace or drop a header).
fn rebuild(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
) -> Request {
    let mut r = Request::new(method, path).with_body(body.to_vec());
    for (k, v) in query {
        r = r.with_query_param(k.clone(), v.clone());
    }
    for (k, v) in headers {
        r = r.with_header(k, v.clone());
    }
    r
}

/// Changes one character of `s` at `at` (modulo its length) to a different one of the same
/// alphabet class, so the result still parses.
fn change_char(s: &str, at: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return "x".to_owned();
    }
    let i = at % chars.len();
    chars[i] = match chars[i] {
        '0'..='8' | 'a'..='e' | 'A'..='Y' => char::from(chars[i] as u8 + 1),
        _ => '0',
    };
    chars.into_iter().collect()
}

/// The ways a signed request is tampered with. Each changes something the signature covers.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    SignatureChar(usize),
    QueryValue(usize),
    QueryAdded,
    QueryRemoved(usize),
    Method,
    Path,
    Action,
    Date,
    Nonce,
    Body(usize),
    ActionRemoved,
    WrongSecret,
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        any::<usize>().prop_map(Tamper::SignatureChar),
        any::<usize>().prop_map(Tamper::QueryValue),
        Just(Tamper::QueryAdded),
        any::<usize>().prop_map(Tamper::QueryRemoved),
        Just(Tamper::Method),
        Just(Tamper::Path),
        Just(Tamper::Action),
        Just(Tamper::Date),
        Just(Tamper::Nonce),
        any::<usize>().prop_map(Tamper::Body),
        Just(Tamper::ActionRemoved),
        Just(Tamper::WrongSecret),
    ]
}

/// Applies `t` to a signed request; `None` when it does not apply (no query to change, no body).
fn apply(t: Tamper, signed: &Request) -> Option<(Request, &'static str)> {
    let mut method = signed.method().to_owned();
    let mut path = signed.path().to_owned();
    let mut query = signed.query().to_vec();
    let mut headers = signed.headers().to_vec();
    let mut body = signed.body().to_vec();
    let mut secret = SECRET;
    let set = |headers: &mut Vec<(String, String)>, name: &str, f: &dyn Fn(&str) -> String| {
        for (k, v) in headers.iter_mut() {
            if k == name {
                *v = f(v);
            }
        }
    };
    match t {
        Tamper::SignatureChar(at) => set(&mut headers, "authorization", &|v| {
            // Only the signature part, never the trailing base64 padding bits' last character.
            let (head, sig) = match v.rsplit_once("Signature=") {
                Some((h, s)) => (format!("{h}Signature="), s.to_owned()),
                None => {
                    let (h, s) = v.rsplit_once(':').unwrap_or((v, ""));
                    (format!("{h}:"), s.to_owned())
                }
            };
            let body = sig.trim_end_matches('=');
            let usable = body.len().saturating_sub(1).max(1);
            let pad = &sig[body.len()..];
            let changed = change_char(&body[..usable.min(body.len())], at);
            format!("{head}{changed}{}{pad}", &body[usable.min(body.len())..])
        }),
        Tamper::QueryValue(at) => {
            if query.is_empty() {
                return None;
            }
            let n = query.len();
            query[at % n].1.push('x');
        }
        Tamper::QueryAdded => query.push(("Injected".into(), "1".into())),
        Tamper::QueryRemoved(at) => {
            if query.is_empty() {
                return None;
            }
            let n = query.len();
            query.remove(at % n);
        }
        Tamper::Method => method = "PUT".into(),
        Tamper::Path => path.push('x'),
        Tamper::Action => set(&mut headers, "x-acs-action", &|_| {
            "DeleteK8sApplication".into()
        }),
        Tamper::Date => {
            set(&mut headers, "date", &|_| {
                "Thu, 01 Jan 2026 00:00:01 GMT".into()
            });
            set(&mut headers, "x-acs-date", &|_| {
                "2026-01-01T00:00:01Z".into()
            });
        }
        Tamper::Nonce => set(&mut headers, "x-acs-signature-nonce", &|v| format!("{v}0")),
        Tamper::Body(at) => {
            if body.is_empty() {
                return None;
            }
            let n = body.len();
            body[at % n] ^= 0x01;
        }
        Tamper::ActionRemoved => headers.retain(|(k, _)| k != "x-acs-action"),
        Tamper::WrongSecret => secret = "fuzz-secret-0123456788",
    }
    Some((rebuild(&method, &path, &query, &headers, &body), secret))
}

/// 2026-01-01T00:00:00Z, the time every request here is signed and verified at.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

proptest! {
    #![proptest_config(config(512))]

    /// Whatever is signed, V1 or V3, a change to any covered part makes verification fail (and
    /// the untouched request verifies, so the failure is the tamper's doing).
    #[test]
    fn a_tampered_request_never_verifies(
        params in proptest::collection::vec(("[A-Za-z][A-Za-z0-9.]{0,12}", any::<String>()), 0..5),
        form in proptest::collection::vec(("[A-Za-z][A-Za-z0-9]{0,8}", "[ -~]{0,20}"), 0..3),
        v3 in any::<bool>(),
        t in tamper(),
    ) {
        let mut request = Request::new("POST", "/pop/v5/k8s/acs/k8s_apps")
            .with_header("host", "127.0.0.1:8080")
            .with_header("x-acs-action", "DeployK8sApplication")
            .with_header("x-acs-version", "2017-08-01");
        for (k, v) in &params {
            request = request.with_query_param(k.clone(), v.clone());
        }
        if !form.is_empty() {
            request = request
                .with_header("content-type", "application/x-www-form-urlencoded")
                .with_body(crate::encode_form(&form).into_bytes());
        }
        let added = if v3 {
            sign_v3(&request, "fuzzid", SECRET, now(), "nonce-1").unwrap()
        } else {
            sign_v1(&request, "fuzzid", SECRET, now(), Some("nonce-1")).unwrap()
        };
        for (name, value) in added {
            request = request.with_header(name, value);
        }
        let parsed = parse(&request).unwrap();
        prop_assert_eq!(verify(&parsed, &request, SECRET, now(), &mut NonceCache::default()), Ok(()));
        let Some((tampered, secret)) = apply(t, &request) else {
            return Ok(());
        };
        let verdict = parse(&tampered).and_then(|p| {
            verify(&p, &tampered, secret, now(), &mut NonceCache::default())
        });
        prop_assert!(verdict.is_err(), "{:?} tampered request verified ({})", t, if v3 { "V3" } else { "V1" });
    }

    /// Oversized, duplicated and contradictory signature material: an error, never a panic.
    #[test]
    fn hostile_signature_material_is_refused(
        repeat in 1usize..4,
        big in 0usize..70_000,
        signed_headers in proptest::collection::vec("[a-z-]{0,12}|host|x-acs-date|authorization|;|", 0..12),
        ak in "\\PC{0,30}",
        v3 in any::<bool>(),
    ) {
        let sig = "A".repeat(big);
        let authorization = if v3 {
            format!(
                "ACS3-HMAC-SHA256 Credential={ak},SignedHeaders={},Signature={sig}",
                signed_headers.join(";")
            )
        } else {
            format!("acs {ak}:{sig}")
        };
        let mut request = Request::new("POST", "/pop/v5/k8s/acs/k8s_apps")
            .with_query_param("AppId", "a");
        for _ in 0..repeat {
            request = request
                .with_header("authorization", authorization.clone())
                .with_header("x-acs-date", "2026-01-01T00:00:00Z")
                .with_header("date", "Thu, 01 Jan 2026 00:00:00 GMT")
                .with_header("x-acs-signature-nonce", "n")
                .with_header("host", "h");
        }
        match parse(&request) {
            Ok(parsed) => {
                let verdict = verify(&parsed, &request, SECRET, now(), &mut NonceCache::default());
                prop_assert!(verdict.is_err(), "garbage verified");
            }
            Err(e) => {
                prop_assert!(!e.code().is_empty());
                prop_assert!(e.http_status() >= 400);
            }
        }
    }
}
