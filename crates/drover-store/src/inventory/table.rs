//! The inventory's rows: loading a provider's hosts, writing their provider fields, and
//! batched inserts and deletes, collecting change rows and events in a [`Plan`].

use std::collections::{BTreeMap, HashSet};

use drover_proto::events::types;
use drover_proto::hosts::HostStatus;
use drover_proto::inventory::DiscoveredHost;
use serde_json::json;
use sqlx::Row;

use super::SyncOutcome;
use crate::events::NewEvent;
use crate::host_changes::{Changes, NewChange, diff_map, diff_opt};
use crate::hosts::changed_event;
use crate::rows::{json, to_json};
use crate::{Dialect, Result};

/// Parameters per row of a new host.
const HOST_PARAMS: usize = 13;

/// What a provider says about a host, as stored on its row.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ProviderFields {
    pub(super) provider: Option<String>,
    pub(super) provider_id: Option<String>,
    pub(super) address: Option<String>,
    pub(super) region: Option<String>,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) attributes: BTreeMap<String, String>,
}

impl ProviderFields {
    pub(super) fn of(provider: &str, d: &DiscoveredHost) -> ProviderFields {
        ProviderFields {
            provider: Some(provider.to_string()),
            provider_id: Some(d.id.clone()),
            address: d.address.clone(),
            region: d.region.clone(),
            labels: d.labels.clone(),
            attributes: d.attributes.clone(),
        }
    }

    /// Per-field changes from `self` to `new`.
    pub(super) fn diff(&self, new: &ProviderFields) -> Changes {
        let mut c = Changes::new();
        diff_opt(
            &mut c,
            "provider",
            self.provider.as_deref(),
            new.provider.as_deref(),
        );
        diff_opt(
            &mut c,
            "provider_id",
            self.provider_id.as_deref(),
            new.provider_id.as_deref(),
        );
        diff_opt(
            &mut c,
            "address",
            self.address.as_deref(),
            new.address.as_deref(),
        );
        diff_opt(
            &mut c,
            "region",
            self.region.as_deref(),
            new.region.as_deref(),
        );
        diff_map(&mut c, "provider_labels", &self.labels, &new.labels);
        diff_map(&mut c, "attributes", &self.attributes, &new.attributes);
        c
    }
}

/// A host row as the inventory sees it.
pub(super) struct Stored {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) status: String,
    pub(super) agent_labels: BTreeMap<String, String>,
    pub(super) fields: ProviderFields,
}

impl Stored {
    pub(super) fn has_agent(&self) -> bool {
        self.status != HostStatus::Missing.as_str()
    }
}

/// The rows of `provider`, and with `with_unowned` also those of no provider.
pub(super) async fn load(
    conn: &mut sqlx::AnyConnection,
    provider: &str,
    with_unowned: bool,
) -> Result<Vec<Stored>> {
    let rows = sqlx::query(sql!(
        "SELECT id, name, status, labels, address, provider, provider_id, region, \
         provider_labels, attributes FROM hosts WHERE provider = $1{}",
        if with_unowned {
            " OR provider IS NULL"
        } else {
            ""
        }
    ))
    .bind(provider)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let labels: String = row.try_get("labels")?;
            let provider_labels: String = row.try_get("provider_labels")?;
            let attributes: String = row.try_get("attributes")?;
            Ok(Stored {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                status: row.try_get("status")?,
                agent_labels: json("hosts", &labels)?,
                fields: ProviderFields {
                    provider: row.try_get("provider")?,
                    provider_id: row.try_get("provider_id")?,
                    address: row.try_get("address")?,
                    region: row.try_get("region")?,
                    labels: json("hosts", &provider_labels)?,
                    attributes: json("hosts", &attributes)?,
                },
            })
        })
        .collect()
}

/// Writes a row's provider fields (and clears `stale`).
pub(super) async fn write_fields(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    f: &ProviderFields,
) -> Result<()> {
    sqlx::query(
        "UPDATE hosts SET provider = $1, provider_id = $2, address = $3, region = $4, \
         provider_labels = $5, attributes = $6, stale = 0 WHERE id = $7",
    )
    .bind(f.provider.clone())
    .bind(f.provider_id.clone())
    .bind(f.address.clone())
    .bind(f.region.clone())
    .bind(to_json(&f.labels))
    .bind(to_json(&f.attributes))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Change rows, events and counts of one inventory transaction.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) changes: Vec<NewChange>,
    pub(super) events: Vec<NewEvent>,
    pub(super) outcome: SyncOutcome,
}

impl Plan {
    pub(super) fn changed(
        &mut self,
        actor: &str,
        s: &Stored,
        changes: Changes,
        provider: Option<&str>,
    ) {
        let c = NewChange {
            host_id: s.id.clone(),
            host_name: s.name.clone(),
            kind: "changed",
            changes,
        };
        self.events.push(changed_event(actor, &c, provider));
        self.changes.push(c);
        self.outcome.changed += 1;
    }
}

/// Takes `provider`'s unlisted hosts away from it: those without an agent are deleted,
/// those with one lose their provider fields. Returns the names freed.
pub(super) async fn drop_unlisted(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    provider: &str,
    actor: &str,
    victims: &[&Stored],
    plan: &mut Plan,
) -> Result<Vec<String>> {
    let missing: Vec<&str> = victims
        .iter()
        .filter(|s| !s.has_agent())
        .map(|s| s.id.as_str())
        .collect();
    let mut deleted = HashSet::new();
    for chunk in missing.chunks(dialect.batch_rows(1)) {
        let list = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Only while still `missing`: an agent that enrolled meanwhile keeps its host.
        let mut q = sqlx::query_as::<_, (String,)>(sql!(
            "DELETE FROM hosts WHERE status = 'missing' AND id IN ({list}) RETURNING id"
        ));
        for id in chunk {
            q = q.bind(id.to_string());
        }
        deleted.extend(q.fetch_all(&mut *conn).await?.into_iter().map(|(id,)| id));
    }
    let mut freed = Vec::new();
    let cleared = ProviderFields::default();
    for s in victims {
        let changes = s.fields.diff(&cleared);
        if deleted.contains(&s.id) {
            plan.events.push(NewEvent::new(
                types::HOST_REMOVED,
                actor,
                json!({ "host": s.name, "host_id": s.id, "provider": provider }),
            ));
            plan.changes.push(NewChange {
                host_id: s.id.clone(),
                host_name: s.name.clone(),
                kind: "removed",
                changes,
            });
            plan.outcome.removed += 1;
            freed.push(s.name.clone());
        } else {
            write_fields(conn, &s.id, &cleared).await?;
            plan.changed(actor, s, changes, Some(provider));
        }
    }
    Ok(freed)
}

/// A free name for a new host: its own, else `{name}.{provider}`, else with its id.
pub(super) fn free_name(names: &HashSet<String>, d: &DiscoveredHost, provider: &str) -> String {
    let mut candidates = [
        d.name.clone(),
        format!("{}.{provider}", d.name),
        format!("{}.{provider}.{}", d.name, d.id),
    ]
    .into_iter()
    .chain((2..).map(|n| format!("{}.{provider}.{}.{n}", d.name, d.id)));
    candidates
        .find(|c| !names.contains(c))
        .unwrap_or_else(|| d.name.clone())
}

/// A host to insert.
pub(super) struct NewHost<'a> {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) discovered: &'a DiscoveredHost,
}

/// Inserts new `missing` hosts, a batch per statement; returns the ids of those whose
/// name was taken meanwhile (an agent enrolled under it), which were not inserted.
pub(super) async fn insert_hosts(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    provider: &str,
    hosts: &[NewHost<'_>],
    now: i64,
) -> Result<HashSet<String>> {
    let mut inserted = HashSet::new();
    for chunk in hosts.chunks(dialect.batch_rows(HOST_PARAMS)) {
        let values = (0..chunk.len())
            .map(|i| {
                let p = (1..=HOST_PARAMS)
                    .map(|k| format!("${}", i * HOST_PARAMS + k))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("({p})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut q = sqlx::query_as::<_, (String,)>(sql!(
            "INSERT INTO hosts (id, name, status, labels, facts, enrolled_at, last_seen_at, \
             address, provider, provider_id, region, provider_labels, attributes) \
             VALUES {values} ON CONFLICT (name) DO NOTHING RETURNING id"
        ));
        for h in chunk {
            let d = h.discovered;
            q = q
                .bind(h.id.clone())
                .bind(h.name.clone())
                .bind(HostStatus::Missing.as_str())
                .bind("{}")
                .bind("{}")
                .bind(now)
                .bind(now)
                .bind(d.address.clone())
                .bind(provider.to_string())
                .bind(d.id.clone())
                .bind(d.region.clone())
                .bind(to_json(&d.labels))
                .bind(to_json(&d.attributes));
        }
        inserted.extend(q.fetch_all(&mut *conn).await?.into_iter().map(|(id,)| id));
    }
    Ok(hosts
        .iter()
        .filter(|h| !inserted.contains(&h.id))
        .map(|h| h.id.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovered(id: &str, name: &str) -> DiscoveredHost {
        DiscoveredHost {
            id: id.into(),
            name: name.into(),
            address: None,
            region: None,
            labels: BTreeMap::new(),
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn free_name_adds_the_provider_then_the_id() {
        let d = discovered("i-1", "web");
        let mut names = HashSet::new();
        assert_eq!(free_name(&names, &d, "aws"), "web");
        names.insert("web".to_string());
        assert_eq!(free_name(&names, &d, "aws"), "web.aws");
        names.insert("web.aws".to_string());
        assert_eq!(free_name(&names, &d, "aws"), "web.aws.i-1");
        names.insert("web.aws.i-1".to_string());
        assert_eq!(free_name(&names, &d, "aws"), "web.aws.i-1.2");
    }

    #[test]
    fn diff_names_each_field() {
        let mut d = discovered("i-1", "web");
        d.address = Some("10.0.0.1".into());
        d.labels.insert("role".into(), "web".into());
        let c = ProviderFields::default().diff(&ProviderFields::of("aws", &d));
        let keys: Vec<&str> = c.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["address", "provider", "provider_id", "provider_labels.role"]
        );
    }
}
