-- The Service ports of each application's current revision, written with the revision, so
-- "which live application of this cluster already uses port P" is an indexed lookup instead
-- of decoding every application's spec (the local runtime's port uniqueness rule).
CREATE TABLE service_ports (
    app_id TEXT NOT NULL REFERENCES applications (id),
    port   INTEGER NOT NULL,
    PRIMARY KEY (app_id, port)
) STRICT;
CREATE INDEX service_ports_by_port ON service_ports (port, app_id);
-- Existing applications: the ports of their current spec (`RevisionDoc.spec.services`).
INSERT OR IGNORE INTO service_ports (app_id, port)
SELECT a.id, json_extract(m.value, '$.servicePort.port')
FROM applications a,
     json_each(a.spec, '$.spec.services') s,
     json_each(s.value, '$.portMappings') m
WHERE a.deleted = FALSE AND json_type(m.value, '$.servicePort.port') = 'integer';
