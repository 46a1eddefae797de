//! Reading hosts: a row as the API shows it, with the provider's labels merged under the
//! agent's.

use std::collections::BTreeMap;

use drover_proto::agent::Facts;
use drover_proto::hosts::{Host, HostStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use drover_core::selector::Prefilter;

use crate::rows::{json, parse_enum, time};
use crate::{Dialect, Result, Store};

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

/// A row's labels: the provider's, overridden by the agent's.
fn labels_of(row: &AnyRow) -> Result<BTreeMap<String, String>> {
    let agent: String = row.try_get("labels")?;
    let provider: String = row.try_get("provider_labels")?;
    let mut labels: BTreeMap<String, String> = json("hosts", &provider)?;
    labels.extend(json::<BTreeMap<String, String>>("hosts", &agent)?);
    Ok(labels)
}

/// A host row as the API shows it (labels merged by [`labels_of`]).
pub(crate) fn host(row: &AnyRow) -> Result<Host> {
    let status: String = row.try_get("status")?;
    let facts: String = row.try_get("facts")?;
    let attributes: String = row.try_get("attributes")?;
    let labels = labels_of(row)?;
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

/// Binds a JSON document's key and the start of its string value as the texts JSON
/// writes (`"key"`, `"value` or, when `exact`, `"value"`); their parameter numbers.
fn bind_key_value(binds: &mut Vec<String>, key: &str, prefix: &str, exact: bool) -> (usize, usize) {
    binds.push(json_string(key));
    let mut value = json_string(prefix);
    if !exact {
        value.pop(); // the closing quote: the value may go on
    }
    binds.push(value);
    (binds.len() - 1, binds.len())
}

/// A string as JSON writes it, quotes included.
fn json_string(text: &str) -> String {
    crate::rows::to_json(&text)
}

/// A host's name and labels (the provider's, overridden by the agent's): what grouping
/// by a label needs, read without decoding facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLabels {
    /// The host's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl drover_core::selector::Selectable for HostLabels {
    fn name(&self) -> &str {
        &self.name
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// Not read: check [`Selector::uses_facts`](drover_core::selector::Selector::uses_facts)
    /// before matching these.
    fn fact(&self, _key: &str) -> Option<String> {
        None
    }
}

impl Store {
    /// Names and labels of every host that meets the prefilters, by name. Decodes two
    /// small columns a row instead of the whole host.
    pub async fn host_labels_where(&self, pre: &[Prefilter]) -> Result<Vec<HostLabels>> {
        let mut binds: Vec<String> = Vec::new();
        let mut sql = String::from("SELECT name, labels, provider_labels FROM hosts WHERE 1 = 1");
        self.push_prefilters(&mut sql, &mut binds, pre);
        sql.push_str(" ORDER BY name");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(HostLabels {
                    name: row.try_get("name")?,
                    labels: labels_of(row)?,
                })
            })
            .collect()
    }

    /// The hosts with these names, by name (unknown names are left out).
    pub async fn hosts_named(&self, names: &[String]) -> Result<Vec<Host>> {
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(self.dialect.batch_rows(1)) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {COLUMNS} FROM hosts WHERE name IN ({}) ORDER BY name",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for name in chunk {
                q = q.bind(name.clone());
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(host(&row)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every host, by name.
    pub async fn list_hosts(&self) -> Result<Vec<Host>> {
        self.hosts_where(None, None, &[]).await
    }

    /// At most `limit` hosts by name, those after `after` when given, that meet every
    /// prefilter: one page read from the store (the unique index on `name` keeps it
    /// cheap at any fleet size). Prefilters are necessary conditions only: the caller
    /// still runs its selector on what comes back.
    pub async fn list_hosts_page(
        &self,
        after: Option<&str>,
        limit: u32,
        pre: &[Prefilter],
    ) -> Result<Vec<Host>> {
        self.hosts_where(after, Some(limit), pre).await
    }

    /// Every host by name that meets every prefilter (see [`Store::list_hosts_page`]).
    pub async fn list_hosts_where(&self, pre: &[Prefilter]) -> Result<Vec<Host>> {
        self.hosts_where(None, None, pre).await
    }

    /// Hosts by name after `after`, meeting every prefilter, at most `limit`.
    async fn hosts_where(
        &self,
        after: Option<&str>,
        limit: Option<u32>,
        pre: &[Prefilter],
    ) -> Result<Vec<Host>> {
        let mut binds: Vec<String> = Vec::new();
        let mut sql = format!("SELECT {COLUMNS} FROM hosts WHERE 1 = 1");
        if let Some(after) = after {
            binds.push(after.to_string());
            sql.push_str(&format!(" AND name > ${}", binds.len()));
        }
        self.push_prefilters(&mut sql, &mut binds, pre);
        sql.push_str(" ORDER BY name");
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(host).collect()
    }

    /// Appends one `AND` condition per prefilter, binding its text as the next
    /// parameter. Substring tests (`instr`/`strpos`), never `LIKE`: a selector's `%`
    /// and `_` are plain characters. Labels are tested on their stored JSON, which
    /// [`to_json`](crate::rows::to_json) writes: label `k` with a value starting `v`
    /// holds the texts `"k"` and `"v`, however the map is spaced.
    fn push_prefilters(&self, sql: &mut String, binds: &mut Vec<String>, pre: &[Prefilter]) {
        let find = match self.dialect {
            Dialect::Sqlite => "instr",
            Dialect::Postgres => "strpos",
        };
        for p in pre {
            match p {
                Prefilter::NameContains(text) => {
                    binds.push(text.clone());
                    sql.push_str(&format!(" AND {find}(name, ${}) > 0", binds.len()));
                }
                // The key, and the value's start, each as a JSON string in the same
                // column (agent or provider labels; the facts document). Whitespace
                // between them does not matter.
                Prefilter::Label { key, prefix, exact } => {
                    let (k, v) = bind_key_value(binds, key, prefix, *exact);
                    sql.push_str(&format!(
                        " AND (({find}(labels, ${k}) > 0 AND {find}(labels, ${v}) > 0) \
                         OR ({find}(provider_labels, ${k}) > 0 \
                         AND {find}(provider_labels, ${v}) > 0))"
                    ));
                }
                Prefilter::Fact { key, prefix, exact } => {
                    let (k, v) = bind_key_value(binds, key, prefix, *exact);
                    sql.push_str(&format!(
                        " AND {find}(facts, ${k}) > 0 AND {find}(facts, ${v}) > 0"
                    ));
                }
                Prefilter::Column {
                    column,
                    value,
                    negated,
                } => {
                    binds.push(value.clone());
                    let (col, n) = (column.name(), binds.len());
                    if *negated {
                        // A host without the value matches a negated term.
                        sql.push_str(&format!(" AND ({col} IS NULL OR {col} <> ${n})"));
                    } else {
                        sql.push_str(&format!(" AND {col} = ${n}"));
                    }
                }
            }
        }
    }

    /// Hosts `offset..offset + limit` by name: a page of the whole fleet by number.
    pub async fn list_hosts_at(&self, offset: u64, limit: u32) -> Result<Vec<Host>> {
        let rows = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM hosts ORDER BY name LIMIT $1 OFFSET $2"
        ))
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(host).collect()
    }

    /// How many hosts have each status (statuses without hosts are absent).
    pub async fn host_status_counts(&self) -> Result<Vec<(HostStatus, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM hosts GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(status, n)| {
                Ok((
                    parse_enum("hosts", &status, HostStatus::parse)?,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect()
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
