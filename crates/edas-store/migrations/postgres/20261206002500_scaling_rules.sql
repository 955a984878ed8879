-- Autoscaling rules of applications (CreateApplicationScalingRule and the rest): one row per
-- application and rule name. `rule` is the typed rule document (edas-store's
-- `ScalingRuleDoc`: metrics and scaling behaviour) as JSON.
CREATE TABLE application_scaling_rules (
    app_id           TEXT NOT NULL REFERENCES applications (id),
    name             TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL DEFAULT FALSE,
    min_replicas     BIGINT NOT NULL,
    max_replicas     BIGINT NOT NULL,
    rule             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_disabled_at BIGINT,
    PRIMARY KEY (app_id, name)
);
