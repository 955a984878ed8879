-- EDAS namespaces created through the API (InsertOrUpdateRegion); the default namespace (the
-- region id) and those of the configuration file are not stored. `id` is EDAS's numeric `Id`,
-- `region_tag` the namespace id (`region:identifier`) applications name.
CREATE TABLE edas_namespaces (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    region_tag   TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    debug_enable INTEGER NOT NULL DEFAULT 0 CHECK (debug_enable IN (0, 1)),
    creator      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

-- What UpdateK8sApplicationBaseInfo/UpdateApplicationBaseInfo set on an application beside its
-- revisions (not a release): NULL is "never set".
CREATE TABLE application_base_info (
    app_id       TEXT PRIMARY KEY REFERENCES applications (id),
    description  TEXT,
    owner        TEXT,
    email        TEXT,
    phone_number TEXT,
    updated_at   INTEGER NOT NULL
) STRICT;

-- Tags of applications and clusters (TagResources): one value per key and resource.
CREATE TABLE resource_tags (
    resource_type TEXT NOT NULL CHECK (resource_type IN ('application', 'cluster')),
    resource_id   TEXT NOT NULL,
    tag_key       TEXT NOT NULL,
    tag_value     TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (resource_type, resource_id, tag_key)
) STRICT;
CREATE INDEX resource_tags_by_tag ON resource_tags (resource_type, tag_key, tag_value);
