//! Property tests: arbitrary Authorization headers, query strings and header values never make
//! parsing or verification panic, and whatever our signer signs (any Unicode parameters sent
//! through the SDKs' wire encoding) verifies.

use std::time::{Duration, SystemTime};

use edas_pop::{NonceCache, Request, decode_form, encode_form, parse, sign_v1, sign_v3, verify};
use proptest::prelude::*;

fn at(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// Authorization values near the two grammars, plus anything at all.
fn authorization() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        ("[ -~]{0,40}", "[ -~]{0,40}").prop_map(|(ak, sig)| format!("acs {ak}:{sig}")),
        (
            "[ -~]{0,20}",
            "[a-zA-Z;:, -]{0,60}",
            "[0-9a-fA-Fz]{0,70}",
            "[ ,=]{0,3}"
        )
            .prop_map(|(ak, signed, sig, sep)| format!(
                "ACS3-HMAC-SHA256 Credential={ak},SignedHeaders={signed}{sep},Signature={sig}"
            )),
        "(ACS3-HMAC-SHA256|acs|ACS3-HMAC-SM3)[ -~]{0,80}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,60}",
        Just("Thu, 01 Jan 2026 00:00:00 GMT".to_string()),
        Just("2026-01-01T00:00:00Z".to_string()),
    ]
}

const HEADER_NAMES: &[&str] = &[
    "date",
    "x-acs-date",
    "content-md5",
    "content-type",
    "accept",
    "host",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
    "x-acs-action",
    "x-acs-security-token",
    "authorization",
    "user-agent",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_requests_never_panic(
        authorization in authorization(),
        raw_query in prop_oneof![any::<String>(), "[a-zA-Z0-9=&+%~*. -]{0,80}"],
        headers in proptest::collection::vec((0..HEADER_NAMES.len(), header_value()), 0..8),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        secret in any::<String>(),
        now in -100_000_000_000i64..100_000_000_000i64,
    ) {
        let mut request = Request::new("POST", "/pop/v5/k8s/acs/k8s_apps").with_body(body);
        if let Ok(with_query) = request.clone().with_raw_query(&raw_query) {
            request = with_query;
        }
        request = request.with_header("Authorization", authorization);
        for (index, value) in headers {
            request = request.with_header(HEADER_NAMES[index], value);
        }
        if let Ok(parsed) = parse(&request) {
            let mut nonces = NonceCache::new(4);
            if let Err(error) = verify(&parsed, &request, &secret, at(now), &mut nonces) {
                prop_assert!(!error.code().is_empty());
                prop_assert!(error.http_status() >= 400);
                let _ = error.to_string();
            }
        }
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail_cleanly(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        match decode_form(&raw) {
            Ok(pairs) => {
                // What decodes re-encodes to something that decodes to the same pairs.
                prop_assert_eq!(decode_form(encode_form(&pairs).as_bytes()).unwrap(), pairs);
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn whatever_we_sign_verifies_after_the_wire_round_trip(
        params in proptest::collection::vec(("[A-Za-z][A-Za-z0-9.]{0,12}", any::<String>()), 0..6),
        body_params in proptest::collection::vec(("[A-Za-z][A-Za-z0-9. ]{0,12}", any::<String>()), 0..3),
        nonce in "[0-9a-f]{32}",
        v3 in any::<bool>(),
        now in 0i64..4_000_000_000i64,
    ) {
        let wire_query = encode_form(&params);
        let mut request = Request::new("POST", "/pop/v5/k8s/acs/k8s_apps")
            .with_raw_query(&wire_query)
            .unwrap()
            .with_header("host", "127.0.0.1:8080")
            .with_header("x-acs-action", "DeployK8sApplication")
            .with_header("x-acs-version", "2017-08-01");
        if !body_params.is_empty() {
            request = request
                .with_header("content-type", "application/x-www-form-urlencoded")
                .with_body(encode_form(&body_params).into_bytes());
        }
        let added = if v3 {
            sign_v3(&request, "testid", "testsecret", at(now), &nonce).unwrap()
        } else {
            sign_v1(&request, "testid", "testsecret", at(now), Some(&nonce)).unwrap()
        };
        for (name, value) in added {
            request = request.with_header(name, value);
        }
        let parsed = parse(&request).unwrap();
        let mut nonces = NonceCache::default();
        prop_assert_eq!(verify(&parsed, &request, "testsecret", at(now), &mut nonces), Ok(()));
        prop_assert_eq!(
            verify(&parsed, &request, "testsecret", at(now), &mut nonces).unwrap_err().code(),
            "SignatureNonceUsed"
        );
        prop_assert_eq!(
            verify(&parsed, &request, "testsecreT", at(now), &mut NonceCache::default()).unwrap_err().code(),
            "SignatureDoesNotMatch"
        );
    }
}
