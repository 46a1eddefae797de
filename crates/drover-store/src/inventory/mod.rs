//! Inventory: hosts as providers list them, merged into drover's hosts.
//!
//! A provider's sync is one write transaction. Its hosts are matched to the stored rows
//! (by provider id, then by the agent label [`INSTANCE_ID_LABEL`], then by name), loaded
//! once into maps: no per-host lookups. Every added, changed or removed host gets a
//! change row and an event, committed with the change.

mod table;

use std::collections::{BTreeSet, HashMap, HashSet};

use drover_proto::events::types;
use drover_proto::hosts::HostStatus;
use drover_proto::inventory::DiscoveredHost;
use serde_json::json;

use crate::events::{NewEvent, append_many_in};
use crate::host_changes::{NewChange, diff_opt, record_in};
use crate::notify::Notice;
use crate::rows::now_ms;
use crate::{Dialect, Result, Store, StoreError};

use table::{
    NewHost, Plan, ProviderFields, Stored, drop_unlisted, free_name, insert_hosts, load,
    write_fields,
};

/// Agent label naming the provider instance the agent runs on; a provider host with that
/// id merges with the agent's host whatever their names.
pub const INSTANCE_ID_LABEL: &str = "drover/instance-id";

/// Key of the PostgreSQL advisory lock that serialises inventory writers ("drover" + 2),
/// so that two providers' syncs never race for one name or one agent host. SQLite's
/// single writer gives the same.
const INVENTORY_LOCK: i64 = 0x6472_6f76_6572_0002;

/// What a provider's sync did to the hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// New hosts (status `missing` until an agent enrolls).
    pub added: u64,
    /// Hosts whose provider fields changed (or were cleared: no longer listed, but an
    /// agent runs there).
    pub changed: u64,
    /// Hosts without an agent that the provider no longer lists, deleted.
    pub removed: u64,
    /// Listed hosts whose provider fields are as stored.
    pub unchanged: u64,
}

impl SyncOutcome {
    pub(crate) fn any(&self) -> bool {
        self.added + self.changed + self.removed > 0
    }
}

/// Takes the inventory lock in an open transaction (PostgreSQL; SQLite needs none).
pub(crate) async fn lock_inventory(conn: &mut sqlx::AnyConnection, dialect: Dialect) -> Result<()> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(INVENTORY_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Merges `provider`'s current host list into the hosts, in one transaction.
    ///
    /// Each listed host is matched to the row with that provider id, else to a host of
    /// no provider whose agent has the label [`INSTANCE_ID_LABEL`] with that id, else to
    /// a host of no provider with that name (and no or the same address), else added as
    /// `missing` (named `{name}.{provider}` when the name is taken). A matched row keeps
    /// its name; its provider fields are updated when they differ. The provider's hosts
    /// it no longer lists are deleted when no agent runs there, and otherwise lose their
    /// provider fields. Every change has a change row and a `host.*` event; the provider
    /// is marked `ok` (`provider.recovered` if it was stale) and a `provider.synced`
    /// event sums up a sync that changed something.
    pub async fn sync_provider(
        &self,
        provider: &str,
        hosts: &[DiscoveredHost],
        actor: &str,
    ) -> Result<SyncOutcome> {
        // One host per provider id: the first listed wins.
        let mut ids = HashSet::with_capacity(hosts.len());
        let listed: Vec<&DiscoveredHost> =
            hosts.iter().filter(|d| ids.insert(d.id.as_str())).collect();
        if listed.len() < hosts.len() {
            tracing::warn!(
                provider,
                duplicates = hosts.len() - listed.len(),
                "provider listed some ids twice; keeping the first of each"
            );
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        lock_inventory(&mut tx, self.dialect).await?;
        let previous: Option<(String,)> = sqlx::query_as(sql!(
            "SELECT status FROM providers WHERE name = $1{}",
            self.dialect.for_update()
        ))
        .bind(provider)
        .fetch_optional(&mut *tx)
        .await?;
        let stored = load(&mut tx, provider, true).await?;
        let mut names: HashSet<String> = sqlx::query_as::<_, (String,)>("SELECT name FROM hosts")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(n,)| n)
            .collect();

        // Indexes over the stored rows. Candidates for (b) and (c) are the hosts of no
        // provider, and this provider's unlisted hosts that have an agent (they would
        // lose their provider fields anyway).
        let mut by_id: HashMap<&str, usize> = HashMap::new();
        let mut by_instance: HashMap<&str, usize> = HashMap::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for (i, s) in stored.iter().enumerate() {
            if s.fields.provider.is_some() {
                let pid = s.fields.provider_id.as_deref().unwrap_or_default();
                if ids.contains(pid) {
                    by_id.insert(pid, i);
                    continue;
                }
                if !s.has_agent() {
                    continue;
                }
            }
            if let Some(iid) = s.agent_labels.get(INSTANCE_ID_LABEL) {
                by_instance.entry(iid.as_str()).or_insert(i);
            }
            by_name.insert(s.name.as_str(), i);
        }
        let mut claimed = vec![false; stored.len()];
        let mut matched = Vec::new();
        let mut unmatched = Vec::new();
        for d in &listed {
            let free = |i: &usize| !claimed[*i];
            let same_place = |i: &usize| {
                let s = &stored[*i];
                // An unlisted host of this provider is about to lose its address.
                s.fields.provider.is_some()
                    || s.fields.address.is_none()
                    || s.fields.address == d.address
            };
            let hit = by_id
                .get(d.id.as_str())
                .copied()
                .or_else(|| by_instance.get(d.id.as_str()).copied().filter(free))
                .or_else(|| {
                    by_name
                        .get(d.name.as_str())
                        .copied()
                        .filter(|i| free(i) && same_place(i))
                });
            match hit {
                Some(i) => {
                    claimed[i] = true;
                    matched.push((i, *d));
                }
                None => unmatched.push(*d),
            }
        }

        let mut plan = Plan::default();
        // Gone from the list: every row of this provider nothing matched.
        let victims: Vec<&Stored> = stored
            .iter()
            .enumerate()
            .filter(|(i, s)| !claimed[*i] && s.fields.provider.is_some())
            .map(|(_, s)| s)
            .collect();
        for name in
            drop_unlisted(&mut tx, self.dialect, provider, actor, &victims, &mut plan).await?
        {
            names.remove(&name);
        }
        for (i, d) in matched {
            let s = &stored[i];
            let fields = ProviderFields::of(provider, d);
            let changes = s.fields.diff(&fields);
            if changes.is_empty() {
                plan.outcome.unchanged += 1;
                continue;
            }
            write_fields(&mut tx, &s.id, &fields).await?;
            plan.changed(actor, s, changes, Some(provider));
        }
        let mut new_hosts = Vec::with_capacity(unmatched.len());
        for d in unmatched {
            let name = free_name(&names, d, provider);
            names.insert(name.clone());
            new_hosts.push(NewHost {
                id: uuid::Uuid::now_v7().to_string(),
                name,
                discovered: d,
            });
        }
        let refused = insert_hosts(&mut tx, self.dialect, provider, &new_hosts, now).await?;
        // Names taken since we read them (an agent enrolled): try the next free ones.
        for h in new_hosts.iter_mut().filter(|h| refused.contains(&h.id)) {
            let mut inserted = false;
            for _ in 0..8 {
                names.insert(h.name.clone());
                h.name = free_name(&names, h.discovered, provider);
                let again = insert_hosts(
                    &mut tx,
                    self.dialect,
                    provider,
                    std::slice::from_ref(h),
                    now,
                )
                .await?;
                if again.is_empty() {
                    inserted = true;
                    break;
                }
            }
            if !inserted {
                return Err(StoreError::Conflict(format!(
                    "no free name for host `{}` of provider `{provider}`",
                    h.discovered.name
                )));
            }
        }
        for h in &new_hosts {
            let mut changes =
                ProviderFields::default().diff(&ProviderFields::of(provider, h.discovered));
            diff_opt(
                &mut changes,
                "status",
                None,
                Some(HostStatus::Missing.as_str()),
            );
            plan.events.push(NewEvent::new(
                types::HOST_ADDED,
                actor,
                json!({
                    "host": h.name,
                    "host_id": h.id,
                    "provider": provider,
                    "provider_id": h.discovered.id,
                    "address": h.discovered.address,
                }),
            ));
            plan.changes.push(NewChange {
                host_id: h.id.clone(),
                host_name: h.name.clone(),
                kind: "added",
                changes,
            });
            plan.outcome.added += 1;
        }

        sqlx::query("UPDATE hosts SET stale = 0 WHERE provider = $1 AND stale <> 0")
            .bind(provider)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO providers (name, status, host_count, error, last_attempt_at, \
             last_ok_at, next_due_at) VALUES ($1, 'ok', $2, NULL, $3, $3, 0) \
             ON CONFLICT (name) DO UPDATE SET status = 'ok', host_count = $2, error = NULL, \
             last_attempt_at = $3, last_ok_at = $3",
        )
        .bind(provider)
        .bind(i64::try_from(listed.len()).unwrap_or(i64::MAX))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if previous.is_some_and(|(status,)| status == "stale") {
            plan.events.push(NewEvent::new(
                types::PROVIDER_RECOVERED,
                actor,
                json!({ "provider": provider, "hosts": listed.len() }),
            ));
        }
        let o = plan.outcome;
        if o.any() {
            plan.events.push(NewEvent::new(
                types::PROVIDER_SYNCED,
                actor,
                json!({
                    "provider": provider,
                    "added": o.added,
                    "changed": o.changed,
                    "removed": o.removed,
                    "unchanged": o.unchanged,
                }),
            ));
        }
        self.finish(tx, actor, plan).await?;
        Ok(o)
    }

    /// Forgets every provider not in `names` (removed from the model): its hosts without
    /// an agent are removed, those with one lose their provider fields, and its provider
    /// row is deleted. Returns the providers forgotten.
    pub async fn forget_providers_except(&self, names: &[String]) -> Result<Vec<String>> {
        let keep: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut tx = self.begin_write().await?;
        lock_inventory(&mut tx, self.dialect).await?;
        let mut known: BTreeSet<String> = sqlx::query_as::<_, (String,)>(
            "SELECT name FROM providers UNION \
             SELECT DISTINCT provider FROM hosts WHERE provider IS NOT NULL",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(n,)| n)
        .collect();
        known.retain(|n| !keep.contains(n.as_str()));
        let actor = "system";
        let mut plan = Plan::default();
        for provider in &known {
            let stored = load(&mut tx, provider, false).await?;
            let victims: Vec<&Stored> = stored.iter().collect();
            drop_unlisted(&mut tx, self.dialect, provider, actor, &victims, &mut plan).await?;
            sqlx::query("DELETE FROM providers WHERE name = $1")
                .bind(provider)
                .execute(&mut *tx)
                .await?;
        }
        self.finish(tx, actor, plan).await?;
        Ok(known.into_iter().collect())
    }

    /// Writes a plan's change rows and events, commits, and tells waiters.
    async fn finish(&self, mut tx: crate::write::WriteTx, actor: &str, plan: Plan) -> Result<()> {
        record_in(&mut tx, self.dialect, &plan.changes, actor).await?;
        let ids = append_many_in(&mut tx, self.dialect, &plan.events).await?;
        tx.commit().await?;
        // Waiters re-read from their cursor: the newest id wakes them all.
        if let Some(&id) = ids.last() {
            self.notifier.publish(Notice::Event { id });
        }
        Ok(())
    }
}
