//! Clusters, and the ConfigMaps and (encrypted) Secrets kept for the local runtime.

use super::*;

const DELETE_CONFIG_MAP: &str =
    "DELETE FROM config_maps WHERE cluster_id = $1 AND k8s_namespace = $2 AND name = $3";
const DELETE_SECRET: &str =
    "DELETE FROM secrets WHERE cluster_id = $1 AND k8s_namespace = $2 AND name = $3";
/// Binds: cluster id, namespace, name, payload, created at, updated at.
const UPSERT_CONFIG_MAP: &str = "INSERT INTO config_maps (cluster_id, k8s_namespace, name, \
     data, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (cluster_id, k8s_namespace, name) DO UPDATE SET \
     data = excluded.data, updated_at = excluded.updated_at";
/// Binds as [`UPSERT_CONFIG_MAP`].
const UPSERT_SECRET: &str = "INSERT INTO secrets (cluster_id, k8s_namespace, name, \
     data_encrypted, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (cluster_id, k8s_namespace, name) DO UPDATE SET \
     data_encrypted = excluded.data_encrypted, updated_at = excluded.updated_at";

/// A ConfigMap or Secret row to upsert: the same key and times, a different payload column.
struct ConfigRow<'a> {
    upsert: &'static str,
    /// Cluster id, namespace, name.
    key: [&'a str; 3],
    payload: Payload<'a>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// A ConfigMap's data is stored as JSON; a Secret's sealed.
enum Payload<'a> {
    Plain(&'a Value),
    Sealed(Vec<u8>),
}

impl Store {
    /// Inserts or replaces a cluster (`created_at` of an existing one is kept).
    pub async fn put_cluster(&self, cluster: &Cluster) -> Result<(), StoreError> {
        non_empty(&cluster.id, "cluster id")?;
        on_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO clusters (id, name, region_id, cluster_type, config, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                 region_id = excluded.region_id, cluster_type = excluded.cluster_type, \
                 config = excluded.config, updated_at = excluded.updated_at",
            )
            .bind(&cluster.id)
            .bind(&cluster.name)
            .bind(&cluster.region_id)
            .bind(&cluster.cluster_type)
            .bind(Json(&cluster.config))
            .bind(ms(cluster.created_at))
            .bind(ms(cluster.updated_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_cluster(&self, id: &str) -> Result<Cluster, StoreError> {
        let select = "SELECT id, name, region_id, cluster_type, config, created_at, updated_at \
                      FROM clusters WHERE id = $1";
        self.fetch_row::<ClusterRow>(select, &[id], "cluster")
            .await?
            .try_into()
    }

    pub async fn list_clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        let select = "SELECT id, name, region_id, cluster_type, config, created_at, updated_at \
                      FROM clusters ORDER BY id";
        rows(self.fetch_rows::<ClusterRow>(select, &[]).await?)
    }

    /// Returns whether the cluster existed.
    pub async fn delete_cluster(&self, id: &str) -> Result<bool, StoreError> {
        let done = on_writer!(self, pool => {
            sqlx::query("DELETE FROM clusters WHERE id = $1").bind(id).execute(pool).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// Inserts or replaces a ConfigMap (`created_at` of an existing one is kept).
    pub async fn put_config_map(&self, config_map: &ConfigMap) -> Result<(), StoreError> {
        self.write_config_map(config_map, None).await
    }

    /// [`Store::put_config_map`] with its audit record, in one transaction.
    pub async fn put_config_map_audited(
        &self,
        config_map: &ConfigMap,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write_config_map(config_map, Some((audit, now))).await
    }

    async fn write_config_map(
        &self,
        config_map: &ConfigMap,
        audit: Option<(&AuditEntry, Timestamp)>,
    ) -> Result<(), StoreError> {
        non_empty(&config_map.name, "config map name")?;
        let row = ConfigRow {
            upsert: UPSERT_CONFIG_MAP,
            key: [
                &config_map.cluster_id,
                &config_map.k8s_namespace,
                &config_map.name,
            ],
            payload: Payload::Plain(&config_map.data),
            created_at: config_map.created_at,
            updated_at: config_map.updated_at,
        };
        self.write_config_row(row, audit).await
    }

    /// Upserts a ConfigMap or Secret row and, when given, its audit record in the same
    /// transaction.
    async fn write_config_row(
        &self,
        row: ConfigRow<'_>,
        audit: Option<(&AuditEntry, Timestamp)>,
    ) -> Result<(), StoreError> {
        write_audited!(self, audit, tx => {
            let query = sqlx::query(row.upsert)
                .bind(row.key[0])
                .bind(row.key[1])
                .bind(row.key[2]);
            let query = match &row.payload {
                Payload::Plain(data) => query.bind(Json(*data)),
                Payload::Sealed(sealed) => query.bind(sealed),
            };
            query
                .bind(ms(row.created_at))
                .bind(ms(row.updated_at))
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    pub async fn get_config_map(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
        name: &str,
    ) -> Result<ConfigMap, StoreError> {
        let select = "SELECT cluster_id, k8s_namespace, name, data, created_at, updated_at \
                      FROM config_maps WHERE cluster_id = $1 AND k8s_namespace = $2 AND name = $3";
        let key = [cluster_id, k8s_namespace, name];
        self.fetch_row::<ConfigMapRow>(select, &key, "config map")
            .await?
            .try_into()
    }

    /// The ConfigMaps of one Kubernetes namespace of a cluster, by name.
    pub async fn list_config_maps(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
    ) -> Result<Vec<ConfigMap>, StoreError> {
        let select = "SELECT cluster_id, k8s_namespace, name, data, created_at, updated_at \
                      FROM config_maps WHERE cluster_id = $1 AND k8s_namespace = $2 ORDER BY name";
        rows(
            self.fetch_rows::<ConfigMapRow>(select, &[cluster_id, k8s_namespace])
                .await?,
        )
    }

    /// Every ConfigMap of a cluster, by namespace then name (for listings without a namespace).
    pub async fn list_cluster_config_maps(
        &self,
        cluster_id: &str,
    ) -> Result<Vec<ConfigMap>, StoreError> {
        let select = "SELECT cluster_id, k8s_namespace, name, data, created_at, updated_at \
                      FROM config_maps WHERE cluster_id = $1 ORDER BY k8s_namespace, name";
        rows(
            self.fetch_rows::<ConfigMapRow>(select, &[cluster_id])
                .await?,
        )
    }

    pub async fn delete_config_map(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        self.delete_audited(DELETE_CONFIG_MAP, &[cluster_id, k8s_namespace, name], None)
            .await
    }

    /// Deletes a ConfigMap or Secret and, when it existed, writes its audit record in the same
    /// transaction; whether it existed.
    pub async fn delete_config_object_audited(
        &self,
        object: ConfigObject,
        at: (&str, &str, &str),
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let delete = match object {
            ConfigObject::ConfigMap => DELETE_CONFIG_MAP,
            ConfigObject::Secret => DELETE_SECRET,
        };
        self.delete_audited(delete, &[at.0, at.1, at.2], Some((audit, now)))
            .await
    }

    /// Inserts or replaces a Secret; its data is encrypted before it leaves this process.
    pub async fn put_secret(&self, secret: &SecretRecord) -> Result<(), StoreError> {
        self.write_secret(secret, None).await
    }

    /// [`Store::put_secret`] with its audit record, in one transaction.
    pub async fn put_secret_audited(
        &self,
        secret: &SecretRecord,
        audit: &AuditEntry,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write_secret(secret, Some((audit, now))).await
    }

    async fn write_secret(
        &self,
        secret: &SecretRecord,
        audit: Option<(&AuditEntry, Timestamp)>,
    ) -> Result<(), StoreError> {
        non_empty(&secret.name, "secret name")?;
        let context = secret_context(&secret.cluster_id, &secret.k8s_namespace, &secret.name);
        let plain =
            serde_json::to_vec(secret.data.expose()).map_err(|e| StoreError::InvalidInput {
                field: "secret data",
                reason: e.to_string(),
            })?;
        let row = ConfigRow {
            upsert: UPSERT_SECRET,
            key: [&secret.cluster_id, &secret.k8s_namespace, &secret.name],
            payload: Payload::Sealed(self.cipher.seal(&context, &plain)?),
            created_at: secret.created_at,
            updated_at: secret.updated_at,
        };
        self.write_config_row(row, audit).await
    }

    pub async fn get_secret(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
        name: &str,
    ) -> Result<SecretRecord, StoreError> {
        let select = "SELECT cluster_id, k8s_namespace, name, data_encrypted, created_at, \
                      updated_at FROM secrets \
                      WHERE cluster_id = $1 AND k8s_namespace = $2 AND name = $3";
        let key = [cluster_id, k8s_namespace, name];
        self.open_secret(self.fetch_row(select, &key, "secret").await?)
    }

    /// The Secrets of one Kubernetes namespace of a cluster, by name, decrypted.
    pub async fn list_secrets(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
    ) -> Result<Vec<SecretRecord>, StoreError> {
        let select = "SELECT cluster_id, k8s_namespace, name, data_encrypted, created_at, \
                      updated_at FROM secrets \
                      WHERE cluster_id = $1 AND k8s_namespace = $2 ORDER BY name";
        self.open_secrets(
            self.fetch_rows(select, &[cluster_id, k8s_namespace])
                .await?,
        )
    }

    /// Every Secret of a cluster, by namespace then name, decrypted.
    pub async fn list_cluster_secrets(
        &self,
        cluster_id: &str,
    ) -> Result<Vec<SecretRecord>, StoreError> {
        let select = "SELECT cluster_id, k8s_namespace, name, data_encrypted, created_at, \
                      updated_at FROM secrets WHERE cluster_id = $1 ORDER BY k8s_namespace, name";
        self.open_secrets(self.fetch_rows(select, &[cluster_id]).await?)
    }

    fn open_secrets(&self, rows: Vec<SecretRow>) -> Result<Vec<SecretRecord>, StoreError> {
        rows.into_iter().map(|row| self.open_secret(row)).collect()
    }

    fn open_secret(&self, row: SecretRow) -> Result<SecretRecord, StoreError> {
        let context = secret_context(&row.cluster_id, &row.k8s_namespace, &row.name);
        let plain = self.cipher.open(&context, &row.data_encrypted)?;
        let data: Value = serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt {
            what: "secrets.data",
            reason: e.to_string(),
        })?;
        Ok(SecretRecord {
            cluster_id: row.cluster_id,
            k8s_namespace: row.k8s_namespace,
            name: row.name,
            data: Sensitive::new(data),
            created_at: from_ms(row.created_at, "secrets.created_at")?,
            updated_at: from_ms(row.updated_at, "secrets.updated_at")?,
        })
    }

    pub async fn delete_secret(
        &self,
        cluster_id: &str,
        k8s_namespace: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        self.delete_audited(DELETE_SECRET, &[cluster_id, k8s_namespace, name], None)
            .await
    }
}
