-- Ingress rules (CreateK8sIngressRule and the rest): one row per cluster, Kubernetes namespace
-- and rule name. `rule` is the typed rule (edas-spec's `IngressSpec`: hosts, paths and their
-- backends, annotations, labels) as JSON.
CREATE TABLE ingress_rules (
    cluster_id TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    rule       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, namespace, name)
);
