-- The Service ports of each application's current revision, written with the revision, so
-- "which live application of this cluster already uses port P" is an indexed lookup instead
-- of decoding every application's spec (the local runtime's port uniqueness rule).
CREATE TABLE service_ports (
    app_id TEXT NOT NULL REFERENCES applications (id),
    port   BIGINT NOT NULL,
    PRIMARY KEY (app_id, port)
);
CREATE INDEX service_ports_by_port ON service_ports (port, app_id);
-- Existing applications: the ports of their current spec (`RevisionDoc.spec.services`).
INSERT INTO service_ports (app_id, port)
SELECT DISTINCT a.id, (m -> 'servicePort' ->> 'port')::BIGINT
FROM applications a,
     jsonb_array_elements(
         CASE WHEN jsonb_typeof(a.spec -> 'spec' -> 'services') = 'array'
              THEN a.spec -> 'spec' -> 'services' ELSE '[]'::jsonb END) s,
     jsonb_array_elements(
         CASE WHEN jsonb_typeof(s -> 'portMappings') = 'array'
              THEN s -> 'portMappings' ELSE '[]'::jsonb END) m
WHERE a.deleted = FALSE AND jsonb_typeof(m -> 'servicePort' -> 'port') = 'number'
ON CONFLICT DO NOTHING;
