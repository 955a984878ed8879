//! The signed client of the EDAS API and of edasd's admin API: the same requests any SDK sends
//! (classic V1 signature, HMAC-SHA1), no private side door.

use std::fmt;
use std::time::{Duration, SystemTime};

use edas_pop::{encode_form, sign_v1};
use edas_wire::envelope::ErrorBody;
use serde::Deserialize as _;
use serde_json::Value;

use crate::profile::Credentials;

/// The EDAS API version every operation is called with.
const API_VERSION: &str = "2017-08-01";

/// An EDAS operation: its action name, HTTP method and path (edas-api.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The `x-acs-action` header.
    pub action: &'static str,
    /// The HTTP method.
    pub method: &'static str,
    /// The ROA path.
    pub path: &'static str,
    /// Whether the parameters travel form-encoded in the body (Tea `formData`), not the query.
    pub form: bool,
}

/// Declares the operations `edasctl` calls, one constant each, from the wire table.
macro_rules! operations {
    ($($name:ident $method:literal $path:literal $(, $form:ident)?;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: `", $method, " ", $path, "`.")]
            pub const $name: Operation = Operation {
                action: stringify!($name),
                method: $method,
                path: $path,
                form: operations!(@form $($form)?),
            };
        )*
    };
    (@form form) => { true };
    (@form) => { false };
}

/// The operations, named as in EDAS.
#[allow(non_upper_case_globals)]
pub mod ops {
    use super::Operation;
    operations! {
        InsertK8sApplication "POST" "/pop/v5/k8s/acs/create_k8s_app";
        DeployK8sApplication "POST" "/pop/v5/k8s/acs/k8s_apps";
        GetK8sApplication "GET" "/pop/v5/changeorder/co_application";
        ListApplication "POST" "/pop/v5/app/app_list";
        GetChangeOrderInfo "POST" "/pop/v5/changeorder/change_order_info";
        ListRecentChangeOrder "POST" "/pop/v5/changeorder/change_order_list";
        ContinuePipeline "GET" "/pop/v5/changeorder/pipeline_batch_confirm";
        AbortChangeOrder "PUT" "/pop/v5/changeorder/change_order_abort";
        AbortAndRollbackChangeOrder "PUT" "/pop/v5/changeorder/change_order_abort_and_rollback";
        RollbackChangeOrder "PUT" "/pop/v5/oam/changeorder/rollback";
        RetryChangeOrderTask "GET" "/pop/v5/changeorder/task_retry";
        ScaleK8sApplication "PUT" "/pop/v5/k8s/acs/k8s_apps";
        RestartK8sApplication "POST" "/pop/v5/k8s/acs/restart_k8s_app";
        StartK8sApplication "POST" "/pop/v5/k8s/acs/start_k8s_app";
        StopK8sApplication "POST" "/pop/v5/k8s/acs/stop_k8s_app";
        DeleteK8sApplication "DELETE" "/pop/v5/k8s/acs/k8s_apps";
        ListCluster "POST" "/pop/v5/resource/cluster_list";
        ListK8sNamespaces "GET" "/pop/v5/k8s/acs/k8s_namespace";
        CreateK8sConfigMap "POST" "/pop/v5/k8s/acs/k8s_config_map", form;
        UpdateK8sConfigMap "PUT" "/pop/v5/k8s/acs/k8s_config_map", form;
        DeleteK8sConfigMap "DELETE" "/pop/v5/k8s/acs/k8s_config_map";
        ListK8sConfigMaps "GET" "/pop/v5/k8s/acs/k8s_config_map";
        CreateK8sSecret "POST" "/pop/v5/k8s/acs/k8s_secret", form;
        UpdateK8sSecret "PUT" "/pop/v5/k8s/acs/k8s_secret", form;
        DeleteK8sSecret "DELETE" "/pop/v5/k8s/acs/k8s_secret";
        ListK8sSecrets "GET" "/pop/v5/k8s/acs/k8s_secret";
        CreateK8sService "POST" "/pop/v5/k8s/acs/k8s_service";
        UpdateK8sService "PUT" "/pop/v5/k8s/acs/k8s_service";
        DeleteK8sService "DELETE" "/pop/v5/k8s/acs/k8s_service";
        GetK8sServices "GET" "/pop/v5/k8s/acs/k8s_service";
        DescribeAppInstanceList "GET" "/pop/v5/oam/app_instance_list";
        ListHistoryDeployVersion "GET" "/pop/v5/app/deploy_history_version_list";
    }
}

/// A refusal from the server (or a failure to reach it), with what the user needs to report it.
#[derive(Debug)]
pub enum CallError {
    /// The server answered with an error envelope.
    Api {
        /// The HTTP status.
        status: u16,
        /// The EDAS error code (`Code`).
        code: String,
        /// The message.
        message: String,
        /// The request id, for the server's logs.
        request_id: String,
    },
    /// The request could not be sent or the answer was not the EDAS envelope.
    Transport(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Api {
                status,
                code,
                message,
                request_id,
            } if code == "SignatureDoesNotMatch" => {
                // The server's string-to-sign follows its first line: the hint goes first.
                let (first, rest) = message.split_once('\n').unwrap_or((message, ""));
                write!(
                    f,
                    "{code}: {first} (HTTP {status}, RequestId {request_id})\n\
                     hint: is the access key secret the one of this key id (edasctl configure), \
                     and does the endpoint reach edasd unchanged (no proxy rewriting path or host)?"
                )?;
                if !rest.is_empty() {
                    write!(f, "\n{rest}")?;
                }
                Ok(())
            }
            CallError::Api {
                status,
                code,
                message,
                request_id,
            } => write!(
                f,
                "{code}: {message} (HTTP {status}, RequestId {request_id})"
            ),
            CallError::Transport(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CallError {}

/// A signed client for one endpoint and one access key.
pub struct Client {
    http: reqwest::blocking::Client,
    endpoint: String,
    credentials: Credentials,
}

impl Client {
    /// A client of `credentials.endpoint`.
    pub fn new(credentials: Credentials) -> anyhow::Result<Client> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Client {
            http,
            endpoint: credentials.endpoint.trim_end_matches('/').to_owned(),
            credentials,
        })
    }

    /// Calls an EDAS operation with its query parameters; `RegionId` is added from the profile.
    /// Returns the whole success body (`Code`, `Message`, `RequestId` and the operation's keys).
    pub fn call(&self, op: Operation, params: &[(String, String)]) -> Result<Value, CallError> {
        let mut pairs = params.to_vec();
        if !self.credentials.region_id.is_empty() && !pairs.iter().any(|(n, _)| n == "RegionId") {
            pairs.push(("RegionId".to_owned(), self.credentials.region_id.clone()));
        }
        // Form operations carry their parameters in the body; RegionId stays in the query, as
        // the classic SDK sends it.
        let (query_pairs, body_pairs): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(name, _)| !op.form || name == "RegionId");
        let query = encode_form(&query_pairs);
        let body = if body_pairs.is_empty() {
            Vec::new()
        } else {
            encode_form(&body_pairs).into_bytes()
        };
        let mut request = edas_pop::Request::new(op.method, op.path)
            .with_raw_query(&query)
            .map_err(|e| CallError::Transport(format!("encoding the query: {e}")))?
            .with_header("x-acs-action", op.action)
            .with_header("x-acs-version", API_VERSION);
        if !body.is_empty() {
            request = request
                .with_header("content-type", "application/x-www-form-urlencoded")
                .with_body(body.clone());
        }
        let url = if query.is_empty() {
            format!("{}{}", self.endpoint, op.path)
        } else {
            format!("{}{}?{query}", self.endpoint, op.path)
        };
        self.send(request, &url, body)
    }

    /// Calls edasd's admin API (`/edasd/v1/<path>`) with an optional JSON body.
    pub fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        self.admin_with_query(method, path, &[], body)
    }

    /// Calls edasd's admin API with query parameters (the audit trail takes them).
    pub fn admin_with_query(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let full = format!("/edasd/v1/{path}");
        let bytes = body.map(Value::to_string).unwrap_or_default().into_bytes();
        let raw_query = encode_form(query);
        let mut request = edas_pop::Request::new(method, full.clone())
            .with_raw_query(&raw_query)
            .map_err(|e| CallError::Transport(format!("encoding the query: {e}")))?
            .with_header("x-acs-action", "edasd.admin")
            .with_header("x-acs-version", API_VERSION);
        if !bytes.is_empty() {
            request = request
                .with_header("content-type", "application/json")
                .with_body(bytes.clone());
        }
        let url = if raw_query.is_empty() {
            format!("{}{full}", self.endpoint)
        } else {
            format!("{}{full}?{raw_query}", self.endpoint)
        };
        self.send(request, &url, bytes)
    }

    /// Calls edasd's admin API with a text body of `content_type` as it is (a release
    /// policy's YAML goes to the server unchanged, so its errors name the lines as written).
    pub fn admin_text(
        &self,
        method: &str,
        path: &str,
        body: &str,
        content_type: &str,
    ) -> Result<Value, CallError> {
        let full = format!("/edasd/v1/{path}");
        let bytes = body.as_bytes().to_vec();
        let request = edas_pop::Request::new(method, full.clone())
            .with_header("x-acs-action", "edasd.admin")
            .with_header("x-acs-version", API_VERSION)
            .with_header("content-type", content_type)
            .with_body(bytes.clone());
        let url = format!("{}{full}", self.endpoint);
        self.send(request, &url, bytes)
    }

    /// A request builder on `http` for `request` at `url`, signed (V1, a fresh nonce).
    fn signed_builder(
        &self,
        http: &reqwest::blocking::Client,
        request: &edas_pop::Request,
        url: &str,
    ) -> Result<reqwest::blocking::RequestBuilder, CallError> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let signature = sign_v1(
            request,
            &self.credentials.access_key_id,
            &self.credentials.access_key_secret,
            SystemTime::now(),
            Some(&nonce),
        )
        .map_err(|e| CallError::Transport(format!("signing the request: {e}")))?;
        let method = reqwest::Method::from_bytes(request.method().as_bytes())
            .map_err(|e| CallError::Transport(format!("method {}: {e}", request.method())))?;
        let mut builder = http.request(method, url);
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        for (name, value) in signature {
            builder = builder.header(name, value);
        }
        Ok(builder)
    }

    /// Why the endpoint could not be reached, with every cause (connection refused, TLS …) and
    /// a hint for the usual mistakes.
    fn unreachable(&self, error: &reqwest::Error) -> CallError {
        let mut causes = vec![error.to_string()];
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            let text = e.to_string();
            if !causes.iter().any(|c| c.contains(&text)) {
                causes.push(text);
            }
            source = e.source();
        }
        let all = causes.join(": ");
        let hint = if self.endpoint.starts_with("https://")
            && (all.contains("InvalidContentType") || all.contains("corrupt message"))
        {
            " (the server does not speak TLS: is the endpoint http://?)"
        } else if all.contains("Connection refused") {
            " (is edasd running and listening there? see `edasctl configure`)"
        } else {
            ""
        };
        CallError::Transport(format!("cannot reach {}: {all}{hint}", self.endpoint))
    }

    fn send(
        &self,
        request: edas_pop::Request,
        url: &str,
        body: Vec<u8>,
    ) -> Result<Value, CallError> {
        let mut builder = self.signed_builder(&self.http, &request, url)?;
        if !body.is_empty() {
            builder = builder.body(body);
        }
        let response = builder.send().map_err(|e| self.unreachable(&e))?;
        self.finish(response)
    }

    /// edasd's streamed `GET /edasd/v1/<path>` (an instance's output): the response, read as
    /// it arrives, without the overall timeout of the other calls; a refusal is the error.
    pub fn stream(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<reqwest::blocking::Response, CallError> {
        let full = format!("/edasd/v1/{path}");
        let raw_query = encode_form(query);
        let request = edas_pop::Request::new("GET", full.clone())
            .with_raw_query(&raw_query)
            .map_err(|e| CallError::Transport(format!("encoding the query: {e}")))?
            .with_header("x-acs-action", "edasd.logs")
            .with_header("x-acs-version", API_VERSION);
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(None::<Duration>)
            .build()
            .map_err(|e| CallError::Transport(format!("building the HTTP client: {e}")))?;
        let url = format!("{}{full}?{raw_query}", self.endpoint);
        let response = self
            .signed_builder(&http, &request, &url)?
            .send()
            .map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(match self.finish(response) {
            Err(e) => e,
            Ok(v) => CallError::Transport(format!("an unexpected answer: {v}")),
        })
    }

    /// The answer of a sent request: its JSON body, or the error it carries.
    fn finish(&self, response: reqwest::blocking::Response) -> Result<Value, CallError> {
        let status = response.status().as_u16();
        let header_request_id = response
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response
            .text()
            .map_err(|e| CallError::Transport(format!("reading the answer: {e}")))?;
        let value: Value = serde_json::from_str(&text).map_err(|_| {
            CallError::Transport(format!(
                "HTTP {status} from {}: the answer is not JSON: {}",
                self.endpoint,
                text.chars().take(200).collect::<String>()
            ))
        })?;
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let error = ErrorBody::deserialize(&value).unwrap_or_default();
        let request_id = match error.request_id {
            id if id.is_empty() => header_request_id.unwrap_or_else(|| "-".to_owned()),
            id => id,
        };
        Err(CallError::Api {
            status,
            code: error.code,
            message: error.message,
            request_id,
        })
    }
}
