//! What the fleet and host pages need beyond the host rows, read so that a page stays
//! cheap at fleet scale: live instance counts per host (shared by every viewer and
//! refreshed in the background, since the fleet page polls every 2 s) and hostclass
//! membership (from the applied model, parsed once per version: [`crate::applied`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_proto::hosts::Host;

use futures::future::BoxFuture;

use super::pages::delta::{Computed, compute_delta};
use super::{PageError, Web};

/// How long instance counts are reused. Host status is read fresh on every poll; counts
/// move only when agents report instance changes.
pub(crate) const COUNTS_TTL: Duration = Duration::from_secs(10);

/// How long a computed delta is reused: the delta page polls every 2 s, so a change
/// shows within two polls.
pub(crate) const DELTA_TTL: Duration = Duration::from_secs(2);

/// Instance counts per host id.
pub(crate) type CountsCache = Shared<HashMap<String, u32>>;

/// The computed delta.
pub(crate) type DeltaCache = Shared<Computed>;

/// A value every viewer shares, read again in the background once older than its
/// time to live: a poll is answered from the previous value while one task reads the
/// next, so it never waits; only the very first read does.
pub(crate) struct Shared<T> {
    slot: std::sync::Mutex<SharedSlot<T>>,
}

struct SharedSlot<T> {
    value: Option<(Instant, Arc<T>)>,
    refreshing: bool,
}

impl<T> Default for Shared<T> {
    fn default() -> Shared<T> {
        Shared {
            slot: std::sync::Mutex::new(SharedSlot {
                value: None,
                refreshing: false,
            }),
        }
    }
}

/// How a shared value is read.
type Loader<T> = fn(Arc<Web>) -> BoxFuture<'static, Result<Arc<T>, PageError>>;

impl<T: Send + Sync + 'static> Shared<T> {
    /// The value: fresh within `ttl`, else the stale one while `load` runs in the
    /// background (one at a time), else (first call) read now.
    async fn get(
        &self,
        web: &Arc<Web>,
        ttl: Duration,
        pick: fn(&Web) -> &Shared<T>,
        load: Loader<T>,
    ) -> Result<Arc<T>, PageError> {
        let stale = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match &slot.value {
                Some((at, v)) if at.elapsed() < ttl => return Ok(v.clone()),
                Some((_, v)) => {
                    let v = v.clone();
                    if !slot.refreshing {
                        slot.refreshing = true;
                        let web = web.clone();
                        tokio::spawn(async move {
                            let fresh = load(web.clone()).await;
                            let mut slot =
                                pick(&web).slot.lock().unwrap_or_else(|e| e.into_inner());
                            slot.refreshing = false;
                            if let Ok(fresh) = fresh {
                                slot.value = Some((Instant::now(), fresh));
                            }
                        });
                    }
                    Some(v)
                }
                None => None,
            }
        };
        if let Some(v) = stale {
            return Ok(v);
        }
        let fresh = load(web.clone()).await?;
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.value = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}

async fn read_counts(web: &Web) -> Result<Arc<HashMap<String, u32>>, PageError> {
    let mut counts: HashMap<String, u32> = HashMap::new();
    for row in web.app.store.list_instances().await? {
        *counts.entry(row.host_id).or_default() += 1;
    }
    Ok(Arc::new(counts))
}

impl Web {
    /// Live instances per host id. Counts older than [`COUNTS_TTL`] are still answered
    /// while one background task reads them again (reading 100,000 instances takes
    /// about a second), so a poll never waits for it; only the very first read does.
    pub async fn instance_counts(self: &Arc<Self>) -> Result<Arc<HashMap<String, u32>>, PageError> {
        self.counts
            .get(
                self,
                COUNTS_TTL,
                |w| &w.counts,
                |w| Box::pin(async move { read_counts(&w).await }),
            )
            .await
    }

    /// The applied model's delta against the live fleet, shared by every viewer of the
    /// delta page and computed again in the background once older than [`DELTA_TTL`]
    /// (with 100,000 instances that takes about a second and a half).
    pub async fn delta(self: &Arc<Self>) -> Result<Arc<Computed>, PageError> {
        self.delta
            .get(
                self,
                DELTA_TTL,
                |w| &w.delta,
                |w| Box::pin(async move { compute_delta(&w).await.map(Arc::new) }),
            )
            .await
    }

    /// Hostclasses of the applied model per host name (empty without a model, or when
    /// the model does not load).
    pub async fn hostclasses(
        &self,
        hosts: &[Host],
    ) -> Result<HashMap<String, Vec<String>>, PageError> {
        Ok(match self.app.applied.get(&self.app.store).await? {
            Some(model) => crate::applied::hostclasses_of(&model, hosts),
            None => HashMap::new(),
        })
    }
}
