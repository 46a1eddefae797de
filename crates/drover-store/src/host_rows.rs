//! Reading hosts: a row as the API shows it, with the provider's labels merged under the
//! agent's.

use std::collections::BTreeMap;

use drover_proto::agent::Facts;
use drover_proto::hosts::{Host, HostStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::rows::{json, parse_enum, time};
use crate::{Result, Store};

/// Columns of a host row, in the order [`host`] reads them.
pub(crate) const COLUMNS: &str = "id, name, status, labels, facts, enrolled_at, last_seen_at, \
    address, provider, provider_id, region, provider_labels, attributes, stale, drained";

/// Reads the facts column: `{}` for a host no agent reported on yet.
pub(crate) fn facts_of(text: &str) -> Result<Facts> {
    if text.trim() == "{}" {
        Ok(Facts::default())
    } else {
        json("hosts", text)
    }
}

/// A host row as the API shows it: labels are the provider's, overridden by the agent's.
pub(crate) fn host(row: &AnyRow) -> Result<Host> {
    let status: String = row.try_get("status")?;
    let agent_labels: String = row.try_get("labels")?;
    let provider_labels: String = row.try_get("provider_labels")?;
    let facts: String = row.try_get("facts")?;
    let attributes: String = row.try_get("attributes")?;
    let mut labels: BTreeMap<String, String> = json("hosts", &provider_labels)?;
    labels.extend(json::<BTreeMap<String, String>>("hosts", &agent_labels)?);
    Ok(Host {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        status: parse_enum("hosts", &status, HostStatus::parse)?,
        labels,
        facts: facts_of(&facts)?,
        enrolled_at: time(row.try_get("enrolled_at")?),
        last_seen_at: time(row.try_get("last_seen_at")?),
        address: row.try_get("address")?,
        provider: row.try_get("provider")?,
        provider_id: row.try_get("provider_id")?,
        region: row.try_get("region")?,
        stale: row.try_get::<i64, _>("stale")? != 0,
        drained: row.try_get::<i64, _>("drained")? != 0,
        attributes: json("hosts", &attributes)?,
        hostclasses: Vec::new(),
        instances: 0,
    })
}

impl Store {
    /// Every host, by name.
    pub async fn list_hosts(&self) -> Result<Vec<Host>> {
        let rows = sqlx::query(sql!("SELECT {COLUMNS} FROM hosts ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(host).collect()
    }

    /// A host by id.
    pub async fn get_host(&self, id: &str) -> Result<Option<Host>> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM hosts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(host).transpose()
    }

    /// A host by name.
    pub async fn get_host_by_name(&self, name: &str) -> Result<Option<Host>> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM hosts WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(host).transpose()
    }
}
