-- Autoscaling rules of applications (CreateApplicationScalingRule and the rest): one row per
-- application and rule name. `rule` is the typed rule document (edas-store's
-- `ScalingRuleDoc`: metrics and scaling behaviour) as JSON.
CREATE TABLE application_scaling_rules (
    app_id           TEXT NOT NULL REFERENCES applications (id),
    name             TEXT NOT NULL,
    enabled          INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    min_replicas     INTEGER NOT NULL,
    max_replicas     INTEGER NOT NULL,
    rule             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_disabled_at INTEGER,
    PRIMARY KEY (app_id, name)
) STRICT;
