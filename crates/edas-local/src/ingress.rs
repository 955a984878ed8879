//! Ingress rules on the local runtime ([`edas_runtime::Runtime::set_ingress`]): one shared
//! listener (`[local] ingress_listen`, an [`edas_proxy::IngressProxy`]) routes by host and path
//! to the applications' service ports on 127.0.0.1, so a request goes through the Service's own
//! proxy (gray split, lossless start, draining) exactly as one sent to the service port.
//! Without a listener, ingress rules are refused. TLS (`secretName`) is refused: the listener
//! speaks plain HTTP. The table lives in memory; edasd applies every stored rule when it starts.
//!
//! A path is routed only while its service port belongs to the path's own application (the
//! table is rebuilt whenever a port changes hands): a port freed by a deleted application and
//! taken by another one never receives the first one's ingress traffic; the path answers 404
//! meanwhile.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use edas_proxy::{IngressProxy, IngressRoute};
use edas_runtime::{IngressSpec, PathType, RuntimeError};

/// The listener and the rules it routes, by (namespace, name).
pub(crate) struct Ingresses {
    proxy: Option<IngressProxy>,
    rules: Mutex<BTreeMap<(String, String), IngressSpec>>,
}

impl Ingresses {
    /// Listens on `listen` when given (an address taken or not allowed is an error now, so a
    /// configuration mistake stops edasd before it serves).
    pub(crate) fn bind(listen: Option<SocketAddr>) -> std::io::Result<Ingresses> {
        let proxy = listen
            .map(|address| IngressProxy::from_std(std::net::TcpListener::bind(address)?))
            .transpose()?;
        Ok(Ingresses {
            proxy,
            rules: Mutex::new(BTreeMap::new()),
        })
    }

    /// The address the listener is bound to, if there is one.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().map(IngressProxy::local_addr)
    }

    /// What [`edas_runtime::Runtime::check_ingress`] refuses on `local`.
    pub(crate) fn check(&self, ingress: &IngressSpec) -> Result<(), RuntimeError> {
        if self.proxy.is_none() {
            return Err(RuntimeError::Unsupported(
                "the local runtime has no ingress listener: set `[local] ingress_listen` (e.g. \"127.0.0.1:8080\") in edasd's configuration".to_owned(),
            ));
        }
        if let Some(i) = ingress.rules.iter().position(|r| r.secret_name.is_some()) {
            return Err(RuntimeError::Unsupported(format!(
                "IngressConf.rules[{i}].secretName: the local ingress listener speaks plain HTTP; TLS needs a Kubernetes cluster's ingress controller"
            )));
        }
        Ok(())
    }

    /// Makes rule (`namespace`, `name`) exactly `ingress` and re-routes the listener, each
    /// service port to the application `owner` says has it.
    pub(crate) fn set(
        &self,
        namespace: &str,
        name: &str,
        ingress: Option<&IngressSpec>,
        owner: impl Fn(u16) -> Option<String>,
    ) -> Result<(), RuntimeError> {
        if let Some(ingress) = ingress {
            self.check(ingress)?;
        }
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (namespace.to_owned(), name.to_owned());
        match ingress {
            Some(ingress) => {
                rules.insert(key, ingress.clone());
            }
            None => {
                rules.remove(&key);
            }
        }
        if let Some(proxy) = &self.proxy {
            proxy.set_routes(routes(rules.values(), owner));
        }
        Ok(())
    }

    /// Rebuilds the listener's table (a service port changed hands).
    pub(crate) fn reroute(&self, owner: impl Fn(u16) -> Option<String>) {
        if let Some(proxy) = &self.proxy {
            let rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
            proxy.set_routes(routes(rules.values(), owner));
        }
    }
}

/// The listener's routes of `rules`: each path to its Service's port on 127.0.0.1, while
/// `owner` says the port belongs to the path's application.
fn routes<'a>(
    rules: impl Iterator<Item = &'a IngressSpec>,
    owner: impl Fn(u16) -> Option<String>,
) -> Vec<IngressRoute> {
    rules
        .flat_map(|spec| spec.rules.iter())
        .flat_map(|rule| rule.paths.iter().map(move |p| (rule, p)))
        .filter(|(_, p)| {
            owner(p.backend.service_port).as_deref() == Some(p.backend.app_id.as_str())
        })
        .map(|(rule, p)| IngressRoute {
            host: rule.host.clone(),
            path: p.path.clone(),
            exact: p.path_type == PathType::Exact,
            upstream: SocketAddr::from(([127, 0, 0, 1], p.backend.service_port)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edas_runtime::{IngressBackend, IngressHost, IngressPath};

    fn spec(host: &str, port: u16, tls: bool) -> IngressSpec {
        IngressSpec {
            rules: vec![IngressHost {
                host: host.into(),
                secret_name: tls.then(|| "tls".into()),
                paths: vec![IngressPath {
                    path: "/".into(),
                    path_type: PathType::Prefix,
                    backend: IngressBackend {
                        service_name: "web".into(),
                        service_port: port,
                        app_id: format!("app-{port}"),
                        ..IngressBackend::default()
                    },
                }],
            }],
            ..IngressSpec::default()
        }
    }

    #[tokio::test]
    async fn without_a_listener_every_rule_is_refused_and_tls_always() {
        let none = Ingresses::bind(None).unwrap();
        let e = none.check(&spec("a.test", 80, false)).unwrap_err();
        assert!(e.to_string().contains("ingress_listen"), "{e}");
        let owners = |port: u16| (port != 8083).then(|| format!("app-{port}"));
        assert!(
            none.set("default", "a", None, owners).is_ok(),
            "removing is fine"
        );
        let on = Ingresses::bind(Some("127.0.0.1:0".parse().unwrap())).unwrap();
        assert!(on.local_addr().is_some_and(|a| a.port() != 0));
        let e = on.check(&spec("a.test", 80, true)).unwrap_err();
        assert!(e.to_string().contains("rules[0].secretName"), "{e}");
        on.set("default", "a", Some(&spec("a.test", 8081, false)), owners)
            .unwrap();
        on.set("other", "a", Some(&spec("b.test", 8082, false)), owners)
            .unwrap();
        on.set("other", "c", Some(&spec("c.test", 8083, false)), owners)
            .unwrap();
        let table = |owner: &dyn Fn(u16) -> Option<String>| {
            routes(on.rules.lock().unwrap().values(), owner)
                .iter()
                .map(|r| (r.host.clone(), r.upstream.port()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            table(&owners),
            [("a.test".into(), 8081), ("b.test".into(), 8082)],
            "port 8083 belongs to no application: c.test is not routed"
        );
        // Port 8082 taken by another application: b.test no longer leads there.
        let moved = |port: u16| {
            Some(if port == 8082 {
                "intruder".into()
            } else {
                format!("app-{port}")
            })
        };
        assert_eq!(
            table(&moved),
            [("a.test".into(), 8081), ("c.test".into(), 8083)]
        );
        on.set("default", "a", None, owners).unwrap();
        assert_eq!(on.rules.lock().unwrap().len(), 2);
    }
}
