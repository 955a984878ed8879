//! The five worked examples of edas-api.md §4 (captured from the official SDKs, AK
//! `testid`/`testsecret`, date 2026-01-01T00:00:00Z) and the failure modes around them.

use std::time::{Duration, SystemTime};

use crate::*;

const SECRET: &str = "testsecret";
const DATE_V1: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
const NONCE: &str = "0123456789abcdef0123456789abcdef";
const DEPLOY_PATH: &str = "/pop/v5/k8s/acs/k8s_apps";
const CONFIG_MAP_PATH: &str = "/pop/v5/k8s/acs/k8s_config_map";
const DEPLOY_QUERY_CLASSIC: &str = "AppId=e83acea6-0000-47e1-96ae-c0e953772cdc&Image=registry.example.com%2Fns%2Fapp%3Av1&Replicas=2&Envs=%5B%7B%22name%22%3A%22x1%22%2C%22value%22%3A%22y1%22%7D%5D&UpdateStrategy=%7B%22type%22%3A%22BatchUpdate%22%2C%22batchUpdate%22%3A%7B%22batch%22%3A2%2C%22releaseType%22%3A%22auto%22%2C%22batchWaitTime%22%3A0%7D%7D&EnableAhas=True&CpuLimit=1&ChangeOrderDesc=deploy+v1+~%2A&RegionId=cn-hangzhou";
const DEPLOY_QUERY_TEA: &str = "AppId=e83acea6-0000-47e1-96ae-c0e953772cdc&ChangeOrderDesc=deploy+v1+~%2A&CpuLimit=1&EnableAhas=True&Envs=%5B%7B%22name%22%3A%22x1%22%2C%22value%22%3A%22y1%22%7D%5D&Image=registry.example.com%2Fns%2Fapp%3Av1&Replicas=2&UpdateStrategy=%7B%22type%22%3A%22BatchUpdate%22%2C%22batchUpdate%22%3A%7B%22batch%22%3A2%2C%22releaseType%22%3A%22auto%22%2C%22batchWaitTime%22%3A0%7D%7D";
const USER_AGENT_TEA: &str = "AlibabaCloud (Linux; x86_64) Python/3.11.0 Core/0.4.3 TeaDSL/2";
const SIGNED_V3_DEPLOY: &str = "accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// 2026-01-01T00:00:00Z plus `seconds`.
fn at(seconds: i64) -> SystemTime {
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    if seconds >= 0 {
        base + Duration::from_secs(seconds.unsigned_abs())
    } else {
        base - Duration::from_secs(seconds.unsigned_abs())
    }
}

fn request(
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Request {
    let mut request = Request::new(method, path)
        .with_raw_query(raw_query)
        .unwrap()
        .with_body(body.to_vec());
    for (name, value) in headers {
        request = request.with_header(name, *value);
    }
    request
}

/// Example A: classic SDK, DeployK8sApplication, as captured on the wire.
fn vector_a() -> Request {
    request(
        "POST",
        DEPLOY_PATH,
        DEPLOY_QUERY_CLASSIC,
        &[
            ("Host", "127.0.0.1:8080"),
            (
                "User-Agent",
                "AlibabaCloud (Linux 6.18.44-fc-v657;x86_64) Python/3.11.7 Core/2.16.1 python-requests/2.18.3",
            ),
            ("Accept-Encoding", "identity"),
            ("Accept", "application/json"),
            ("Connection", "keep-alive"),
            ("x-acs-action", "DeployK8sApplication"),
            ("x-acs-version", "2017-08-01"),
            ("x-sdk-invoke-type", "normal"),
            ("x-acs-region-id", "cn-hangzhou"),
            ("Date", DATE_V1),
            ("x-acs-signature-method", "HMAC-SHA1"),
            ("x-acs-signature-version", "1.0"),
            ("Authorization", "acs testid:62YHcE1gQm+QZKUy4mAy6oVT098="),
            ("x-sdk-client", "python/2.0.0"),
            ("Content-Length", "0"),
        ],
        b"",
    )
}

const VECTOR_A_STRING_TO_SIGN: &str = "POST\napplication/json\n\n\nThu, 01 Jan 2026 00:00:00 GMT\nx-acs-action:DeployK8sApplication\nx-acs-region-id:cn-hangzhou\nx-acs-signature-method:HMAC-SHA1\nx-acs-signature-version:1.0\nx-acs-version:2017-08-01\n/pop/v5/k8s/acs/k8s_apps?AppId=e83acea6-0000-47e1-96ae-c0e953772cdc&ChangeOrderDesc=deploy v1 ~*&CpuLimit=1&EnableAhas=True&Envs=[{\"name\":\"x1\",\"value\":\"y1\"}]&Image=registry.example.com/ns/app:v1&RegionId=cn-hangzhou&Replicas=2&UpdateStrategy={\"type\":\"BatchUpdate\",\"batchUpdate\":{\"batch\":2,\"releaseType\":\"auto\",\"batchWaitTime\":0}}";

const VECTOR_B_BODY: &[u8] =
    b"ClusterId=c1&Namespace=default&Name=my-config&Data=%7B%22k%22%3A%22v%22%7D";

/// Example B: classic SDK, CreateK8sConfigMap with a form body.
fn vector_b() -> Request {
    request(
        "POST",
        CONFIG_MAP_PATH,
        "RegionId=cn-hangzhou",
        &[
            ("Host", "127.0.0.1:8080"),
            ("Accept", "application/json"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-MD5", "oiMbwQISJmy+9MUm1DQ8qA=="),
            ("x-acs-action", "CreateK8sConfigMap"),
            ("x-acs-version", "2017-08-01"),
            ("x-sdk-invoke-type", "normal"),
            ("x-acs-region-id", "cn-hangzhou"),
            ("Date", DATE_V1),
            ("x-acs-signature-method", "HMAC-SHA1"),
            ("x-acs-signature-version", "1.0"),
            ("Authorization", "acs testid:ABsK28FBstyCxCCQ682XP44/l7I="),
        ],
        VECTOR_B_BODY,
    )
}

fn tea_v3_headers<'a>(
    action: &'a str,
    sha: &'a str,
    signature: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Accept-Encoding", "identity"),
        ("host", "127.0.0.1:8080"),
        ("x-acs-version", "2017-08-01"),
        ("x-acs-action", action),
        ("user-agent", USER_AGENT_TEA),
        ("x-acs-date", "2026-01-01T00:00:00Z"),
        ("x-acs-signature-nonce", NONCE),
        ("accept", "application/json"),
        ("x-acs-content-sha256", sha),
        ("x-acs-credentials-provider", "static_ak"),
        ("Authorization", signature),
        ("Content-Length", "0"),
    ]
}

/// Example C: Tea SDK V3, DeployK8sApplication.
fn vector_c() -> Request {
    let authorization = format!(
        "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={SIGNED_V3_DEPLOY},Signature=6be0be9ed765951f15f60d4909698f04af2b08b60a2ea6fce49599ccabfc555a"
    );
    request(
        "POST",
        DEPLOY_PATH,
        DEPLOY_QUERY_TEA,
        &tea_v3_headers("DeployK8sApplication", EMPTY_SHA256, &authorization),
        b"",
    )
}

const VECTOR_D_BODY: &[u8] =
    b"ClusterId=c1&Data.a+b=c%26d&Data.k=v&Name=my-config&Namespace=default";

/// Example D: Tea SDK V3, CreateK8sConfigMap with a form body.
fn vector_d() -> Request {
    let authorization = "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=accept;content-type;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=aefa7a79a8254d8e703446627ab364d7e97901b8ed996042deaccdfbeefeaa50";
    let mut headers = tea_v3_headers(
        "CreateK8sConfigMap",
        "d46d58bd17b0f389945d1c913e681f36428d4fba35f53047512c72f86809cbd1",
        authorization,
    );
    headers.retain(|(name, _)| *name != "Content-Length");
    headers.push(("content-type", "application/x-www-form-urlencoded"));
    headers.push(("Content-Length", "69"));
    request("POST", CONFIG_MAP_PATH, "", &headers, VECTOR_D_BODY)
}

/// Example E: Tea SDK with `signature_algorithm='v2'` (V1 with a nonce), DeployK8sApplication.
fn vector_e() -> Request {
    request(
        "POST",
        DEPLOY_PATH,
        DEPLOY_QUERY_TEA,
        &[
            ("date", DATE_V1),
            ("host", "127.0.0.1:8080"),
            ("accept", "application/json"),
            ("x-acs-signature-nonce", NONCE),
            ("x-acs-signature-method", "HMAC-SHA1"),
            ("x-acs-signature-version", "1.0"),
            ("x-acs-version", "2017-08-01"),
            ("x-acs-action", "DeployK8sApplication"),
            ("user-agent", USER_AGENT_TEA),
            ("x-acs-credentials-provider", "static_ak"),
            ("authorization", "acs testid:/us27d9wGag3NosRnBts4Qus9S8="),
        ],
        b"",
    )
}

fn all_vectors() -> Vec<(&'static str, Request)> {
    vec![
        ("A", vector_a()),
        ("B", vector_b()),
        ("C", vector_c()),
        ("D", vector_d()),
        ("E", vector_e()),
    ]
}

fn check(request: &Request, secret: &str, now: SystemTime) -> Result<(), VerifyError> {
    let parsed = parse(request)?;
    verify(&parsed, request, secret, now, &mut NonceCache::default())
}

/// A copy of `request` with one header's value replaced (or removed when `value` is `None`).
fn replace_header(request: &Request, name: &str, value: Option<&str>) -> Request {
    let mut copy =
        Request::new(request.method(), request.path()).with_body(request.body().to_vec());
    for (k, v) in request.query() {
        copy = copy.with_query_param(k.clone(), v.clone());
    }
    for (n, v) in request.headers() {
        if n.eq_ignore_ascii_case(name) {
            if let Some(value) = value {
                copy = copy.with_header(n, value);
            }
        } else {
            copy = copy.with_header(n, v.clone());
        }
    }
    copy
}

#[test]
fn the_five_sdk_vectors_verify() {
    for (name, request) in all_vectors() {
        let parsed = parse(&request).unwrap_or_else(|e| panic!("vector {name}: {e}"));
        assert_eq!(parsed.access_key_id(), "testid", "vector {name}");
        check(&request, SECRET, at(0)).unwrap_or_else(|e| panic!("vector {name}: {e}"));
    }
    assert_eq!(
        parse(&vector_a()).unwrap().version(),
        SignatureVersion::V1HmacSha1
    );
    assert_eq!(
        parse(&vector_c()).unwrap().version(),
        SignatureVersion::V3HmacSha256
    );
}

#[test]
fn wrong_secret_fails_every_vector_with_the_server_string_to_sign() {
    for (name, request) in all_vectors() {
        let error = check(&request, "testsecreT", at(0)).unwrap_err();
        assert_eq!(error.code(), "SignatureDoesNotMatch", "vector {name}");
        assert_eq!(error.http_status(), 400);
    }
    let error = check(&vector_a(), "wrong", at(0)).unwrap_err();
    assert_eq!(
        error,
        VerifyError::SignatureDoesNotMatch {
            string_to_sign: VECTOR_A_STRING_TO_SIGN.into(),
            canonical_request: None,
        }
    );
    assert!(error.to_string().ends_with(VECTOR_A_STRING_TO_SIGN));
    let v3_message = check(&vector_c(), "wrong", at(0)).unwrap_err().to_string();
    assert!(
        v3_message.contains(
            "ACS3-HMAC-SHA256\n2f96e88aabc49b391c4e82f00e9c4d75d273953ad56c7fcd85841a3a7598b08b"
        ),
        "{v3_message}"
    );
    assert!(
        v3_message.contains("ChangeOrderDesc=deploy%20v1%20~%2A"),
        "{v3_message}"
    );
}

#[test]
fn a_changed_query_value_fails_every_query_vector() {
    for (name, request) in all_vectors() {
        if request.query().is_empty()
            || request.query() == [("RegionId".into(), "cn-hangzhou".into())]
        {
            continue;
        }
        let mut tampered = Request::new(request.method(), request.path());
        for (k, v) in request.query() {
            let v = if k == "Replicas" {
                "3".to_string()
            } else {
                v.clone()
            };
            tampered = tampered.with_query_param(k.clone(), v);
        }
        for (n, v) in request.headers() {
            tampered = tampered.with_header(n, v.clone());
        }
        assert_eq!(
            check(&tampered, SECRET, at(0)).unwrap_err().code(),
            "SignatureDoesNotMatch",
            "vector {name}"
        );
    }
}

#[test]
fn a_changed_signed_header_fails() {
    for (name, request) in all_vectors() {
        let tampered = replace_header(&request, "x-acs-action", Some("DeleteK8sApplication"));
        assert_eq!(
            check(&tampered, SECRET, at(0)).unwrap_err().code(),
            "SignatureDoesNotMatch",
            "vector {name}"
        );
    }
}

#[test]
fn the_date_window_is_fifteen_minutes_back_and_five_ahead() {
    for (name, request) in all_vectors() {
        // `at` is the server clock; the request is dated at 0 (ahead when the clock is negative).
        for seconds in [-300, 900] {
            check(&request, SECRET, at(seconds)).unwrap_or_else(|e| panic!("vector {name}: {e}"));
        }
        for seconds in [-301, -900, 901, 86_400] {
            let error = check(&request, SECRET, at(seconds)).unwrap_err();
            assert_eq!(error.code(), "IllegalTimestamp", "vector {name}: {error}");
        }
    }
    let message = check(&vector_a(), SECRET, at(3600))
        .unwrap_err()
        .to_string();
    assert!(message.contains("3600 s away"), "{message}");
}

#[test]
fn a_changed_date_fails_the_signature() {
    let tampered = replace_header(&vector_a(), "date", Some("Thu, 01 Jan 2026 00:00:01 GMT"));
    assert_eq!(
        check(&tampered, SECRET, at(0)).unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
    let tampered = replace_header(&vector_c(), "x-acs-date", Some("2026-01-01T00:00:01Z"));
    assert_eq!(
        check(&tampered, SECRET, at(0)).unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
}

#[test]
fn missing_or_malformed_dates_are_named() {
    let error = check(&replace_header(&vector_a(), "date", None), SECRET, at(0)).unwrap_err();
    assert_eq!(error.code(), "IllegalTimestamp");
    assert!(matches!(
        error,
        VerifyError::MissingDate { header: "Date", .. }
    ));
    let error = check(
        &replace_header(&vector_c(), "x-acs-date", None),
        SECRET,
        at(0),
    )
    .unwrap_err();
    assert!(matches!(
        error,
        VerifyError::MissingDate {
            header: "x-acs-date",
            ..
        }
    ));
    let error = check(
        &replace_header(&vector_a(), "date", Some("yesterday")),
        SECRET,
        at(0),
    )
    .unwrap_err();
    assert_eq!(error.code(), "InvalidTimeStamp.Format");
    assert!(error.to_string().contains("yesterday"));
    let error = check(
        &replace_header(&vector_c(), "x-acs-date", Some("2026-13-01")),
        SECRET,
        at(0),
    )
    .unwrap_err();
    assert_eq!(error.code(), "InvalidTimeStamp.Format");
}

#[test]
fn a_reused_nonce_is_refused_within_the_window() {
    for request in [vector_c(), vector_e()] {
        let parsed = parse(&request).unwrap();
        let mut nonces = NonceCache::default();
        verify(&parsed, &request, SECRET, at(0), &mut nonces).unwrap();
        let error = verify(&parsed, &request, SECRET, at(60), &mut nonces).unwrap_err();
        assert_eq!(error.code(), "SignatureNonceUsed");
        // Past the window the date check refuses the replay instead.
        let error = verify(&parsed, &request, SECRET, at(901), &mut nonces).unwrap_err();
        assert_eq!(error.code(), "IllegalTimestamp");
    }
    // A failed signature does not consume the nonce.
    let request = vector_c();
    let parsed = parse(&request).unwrap();
    let mut nonces = NonceCache::default();
    assert!(verify(&parsed, &request, "wrong", at(0), &mut nonces).is_err());
    assert!(nonces.is_empty());
    verify(&parsed, &request, SECRET, at(0), &mut nonces).unwrap();
}

#[test]
fn v1_without_a_nonce_relies_on_the_date_alone() {
    let request = vector_a();
    let parsed = parse(&request).unwrap();
    let mut nonces = NonceCache::default();
    verify(&parsed, &request, SECRET, at(0), &mut nonces).unwrap();
    verify(&parsed, &request, SECRET, at(1), &mut nonces).unwrap();
    assert!(nonces.is_empty());
}

#[test]
fn content_md5_must_match_the_body() {
    let tampered = vector_b().with_body(
        b"ClusterId=c2&Namespace=default&Name=my-config&Data=%7B%22k%22%3A%22v%22%7D".to_vec(),
    );
    let error = check(&tampered, SECRET, at(0)).unwrap_err();
    assert_eq!(error.code(), "ContentMD5NotMatched");
    assert!(error.to_string().contains("oiMbwQISJmy+9MUm1DQ8qA=="));
}

#[test]
fn content_md5_of_an_empty_body_verifies() {
    let base = Request::new("GET", "/pop/v5/changeorder/pipeline_batch_confirm")
        .with_raw_query("PipelineId=p1&Confirm=True")
        .unwrap()
        .with_header("x-acs-action", "ContinuePipeline")
        .with_header("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==");
    let mut signed = base.clone();
    for (name, value) in sign_v1(&base, "testid", SECRET, at(0), None).unwrap() {
        signed = signed.with_header(name, value);
    }
    check(&signed, SECRET, at(0)).unwrap();
    let wrong = replace_header(&signed, "content-md5", Some("oiMbwQISJmy+9MUm1DQ8qA=="));
    assert_eq!(
        check(&wrong, SECRET, at(0)).unwrap_err().code(),
        "ContentMD5NotMatched"
    );
}

#[test]
fn content_sha256_must_match_the_body() {
    let tampered = vector_d().with_body(
        b"ClusterId=c2&Data.a+b=c%26d&Data.k=v&Name=my-config&Namespace=default".to_vec(),
    );
    assert_eq!(
        check(&tampered, SECRET, at(0)).unwrap_err().code(),
        "ContentSHA256NotMatched"
    );
    let missing = replace_header(&vector_c(), "x-acs-content-sha256", None);
    let error = check(&missing, SECRET, at(0)).unwrap_err();
    assert_eq!(error.code(), "IncompleteSignature");
    assert!(error.to_string().contains("x-acs-content-sha256"));
}

#[test]
fn v1_accepts_both_empty_value_forms() {
    let base = Request::new("POST", DEPLOY_PATH)
        .with_raw_query("AppId=a1&Command=&Args=")
        .unwrap()
        .with_header("accept", "application/json")
        .with_header("date", DATE_V1)
        .with_header("x-acs-action", "DeployK8sApplication");
    let classic = "POST\napplication/json\n\n\nThu, 01 Jan 2026 00:00:00 GMT\nx-acs-action:DeployK8sApplication\n/pop/v5/k8s/acs/k8s_apps?AppId=a1&Args=&Command=";
    let tea_v2 = "POST\napplication/json\n\n\nThu, 01 Jan 2026 00:00:00 GMT\nx-acs-action:DeployK8sApplication\n/pop/v5/k8s/acs/k8s_apps?AppId=a1&Args&Command";
    for string_to_sign in [classic, tea_v2] {
        let signature = v1::signature(SECRET, string_to_sign);
        let request = base
            .clone()
            .with_header("Authorization", format!("acs testid:{signature}"));
        check(&request, SECRET, at(0)).unwrap_or_else(|e| panic!("{string_to_sign}: {e}"));
    }
    // A mix of both forms matches neither.
    let mixed = "POST\napplication/json\n\n\nThu, 01 Jan 2026 00:00:00 GMT\nx-acs-action:DeployK8sApplication\n/pop/v5/k8s/acs/k8s_apps?AppId=a1&Args=&Command";
    let request = base.with_header(
        "Authorization",
        format!("acs testid:{}", v1::signature(SECRET, mixed)),
    );
    assert_eq!(
        check(&request, SECRET, at(0)).unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
}

#[test]
fn v3_requires_the_headers_it_relies_on_to_be_signed() {
    // Drop the nonce from SignedHeaders: the request still carries it, so it is refused before
    // any signature is computed.
    let without_nonce = SIGNED_V3_DEPLOY.replace(";x-acs-signature-nonce", "");
    let authorization = format!(
        "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={without_nonce},Signature={}",
        "0".repeat(64)
    );
    let request = replace_header(&vector_c(), "authorization", Some(&authorization));
    let error = check(&request, SECRET, at(0)).unwrap_err();
    assert_eq!(
        error,
        VerifyError::UnsignedHeader {
            name: "x-acs-signature-nonce".into(),
            signed: without_nonce.clone(),
        }
    );
    assert_eq!(error.code(), "IncompleteSignature");
    for required in ["host", "x-acs-date"] {
        let signed = SIGNED_V3_DEPLOY
            .split(';')
            .filter(|h| *h != required)
            .collect::<Vec<_>>()
            .join(";");
        let authorization = format!(
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={signed},Signature={}",
            "0".repeat(64)
        );
        let request = replace_header(&vector_c(), "authorization", Some(&authorization));
        assert!(
            matches!(check(&request, SECRET, at(0)), Err(VerifyError::UnsignedHeader { ref name, .. }) if name == required),
            "{required}"
        );
    }
    let no_host = replace_header(&vector_c(), "host", None);
    assert!(matches!(
        check(&no_host, SECRET, at(0)),
        Err(VerifyError::MissingHeader { name: "host", .. })
    ));
    // A signed header that is not in the request.
    let no_ua = replace_header(&vector_c(), "user-agent", None);
    assert!(matches!(
        check(&no_ua, SECRET, at(0)),
        Err(VerifyError::SignedHeaderAbsent { ref name }) if name == "user-agent"
    ));
}

#[test]
fn security_tokens_are_refused() {
    let request = vector_c().with_header("x-acs-security-token", "CAIS…");
    let error = parse(&request).unwrap_err();
    assert_eq!(error.code(), "InvalidSecurityToken.NotSupported");
    let parsed = parse(&vector_c()).unwrap();
    let error = verify(&parsed, &request, SECRET, at(0), &mut NonceCache::default()).unwrap_err();
    assert_eq!(error, VerifyError::SecurityTokenNotSupported);
}

#[test]
fn malformed_authorization_headers_are_named() {
    let cases: &[(&str, &str)] = &[
        ("", "IncompleteSignature"),
        ("acs testid", "IncompleteSignature"),
        ("acs :sig", "IncompleteSignature"),
        ("acs testid:", "IncompleteSignature"),
        (
            "ACS3-HMAC-SM3 Credential=a,SignedHeaders=host,Signature=00",
            "IncompleteSignature",
        ),
        ("ACS3-HMAC-SHA256 Credential=testid", "IncompleteSignature"),
        (
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=zz",
            "IncompleteSignature",
        ),
        (
            "ACS3-HMAC-SHA256 Credential=a,Credential=b,SignedHeaders=host,Signature=00",
            "IncompleteSignature",
        ),
        (
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host;;date,Signature=00",
            "IncompleteSignature",
        ),
        ("Bearer abc", "IncompleteSignature"),
    ];
    for (authorization, code) in cases {
        let request = replace_header(&vector_c(), "authorization", Some(authorization));
        let error = parse(&request).unwrap_err();
        assert_eq!(error.code(), *code, "{authorization}: {error}");
    }
    let missing = replace_header(&vector_c(), "authorization", None);
    assert_eq!(
        parse(&missing).unwrap_err(),
        VerifyError::MissingAuthorization
    );
    let unsupported = replace_header(
        &vector_c(),
        "authorization",
        Some("ACS3-HMAC-SM3 Credential=a"),
    );
    assert!(
        parse(&unsupported)
            .unwrap_err()
            .to_string()
            .contains("ACS3-HMAC-SM3")
    );
}

#[test]
fn the_signer_reproduces_the_sdk_vectors() {
    // A without its signing headers: the signer adds Accept, Date and the method/version.
    let base_a = request(
        "POST",
        DEPLOY_PATH,
        DEPLOY_QUERY_CLASSIC,
        &[
            ("x-acs-action", "DeployK8sApplication"),
            ("x-acs-version", "2017-08-01"),
            ("x-sdk-invoke-type", "normal"),
            ("x-acs-region-id", "cn-hangzhou"),
        ],
        b"",
    );
    let added = sign_v1(&base_a, "testid", SECRET, at(0), None).unwrap();
    assert!(added.contains(&("Date", DATE_V1.to_string())), "{added:?}");
    assert_eq!(
        added.last(),
        Some(&(
            "Authorization",
            "acs testid:62YHcE1gQm+QZKUy4mAy6oVT098=".to_string()
        ))
    );
    // C without its signing headers.
    let base_c = request(
        "POST",
        DEPLOY_PATH,
        DEPLOY_QUERY_TEA,
        &[
            ("host", "127.0.0.1:8080"),
            ("x-acs-version", "2017-08-01"),
            ("x-acs-action", "DeployK8sApplication"),
            ("user-agent", USER_AGENT_TEA),
            ("accept", "application/json"),
            ("x-acs-credentials-provider", "static_ak"),
        ],
        b"",
    );
    let added = sign_v3(&base_c, "testid", SECRET, at(0), NONCE).unwrap();
    assert_eq!(
        added.last().map(|(_, v)| v.as_str()),
        Some(vector_c().header("authorization").unwrap())
    );
}

#[test]
fn signer_refuses_what_it_cannot_sign() {
    let no_host = Request::new("GET", "/");
    assert_eq!(
        sign_v3(&no_host, "a", "s", at(0), "n"),
        Err(SignError::MissingHost)
    );
    let dated = Request::new("GET", "/").with_header("Date", DATE_V1);
    assert_eq!(
        sign_v1(&dated, "a", "s", at(0), None),
        Err(SignError::HeaderAlreadySet("Date"))
    );
}

#[test]
fn signed_form_bodies_round_trip() {
    let body = encode_form(&[
        ("ClusterId".into(), "c1".into()),
        ("Data".into(), r#"[{"Key":"a b","Value":"ü*~"}]"#.into()),
    ]);
    let base = Request::new("POST", CONFIG_MAP_PATH)
        .with_header("host", "edas.example")
        .with_header("content-type", "application/x-www-form-urlencoded")
        .with_header("x-acs-action", "CreateK8sConfigMap")
        .with_body(body.into_bytes());
    let mut v1_request = base.clone();
    for (name, value) in sign_v1(&base, "testid", SECRET, at(0), Some("n1")).unwrap() {
        v1_request = v1_request.with_header(name, value);
    }
    check(&v1_request, SECRET, at(0)).unwrap();
    let mut v3_request = base.clone();
    for (name, value) in sign_v3(&base, "testid", SECRET, at(0), "n1").unwrap() {
        v3_request = v3_request.with_header(name, value);
    }
    check(&v3_request, SECRET, at(0)).unwrap();
    assert_eq!(
        check(&v3_request, "other", at(0)).unwrap_err().code(),
        "SignatureDoesNotMatch"
    );
}
