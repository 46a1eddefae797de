//! What the fleet and host pages need beyond the host rows, read so that a page stays
//! cheap at fleet scale: live instance counts per host (shared by every viewer and
//! refreshed in the background, since the fleet page polls every 2 s) and hostclass
//! membership (from the applied model, parsed once per version).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_core::model::Model;
use drover_proto::hosts::Host;

use super::{PageError, Web};

/// How long instance counts are reused. Host status is read fresh on every poll; counts
/// move only when agents report instance changes.
pub(crate) const COUNTS_TTL: Duration = Duration::from_secs(10);

/// Instance counts per host id, with the time they were read, and whether a refresh
/// is under way.
#[derive(Default)]
pub(crate) struct CountsCache(std::sync::Mutex<CountsSlot>);

#[derive(Default)]
pub(crate) struct CountsSlot {
    counts: Option<(Instant, Arc<HashMap<String, u32>>)>,
    refreshing: bool,
}

async fn read_counts(web: &Web) -> Result<Arc<HashMap<String, u32>>, PageError> {
    let mut counts: HashMap<String, u32> = HashMap::new();
    for row in web.app.store.list_instances().await? {
        *counts.entry(row.host_id).or_default() += 1;
    }
    Ok(Arc::new(counts))
}

/// The applied model, parsed, by version id (`None`: that version does not load).
#[derive(Default)]
pub(crate) struct ModelCache(std::sync::Mutex<Option<(i64, Option<Arc<Model>>)>>);

impl Web {
    /// Live instances per host id. Counts older than [`COUNTS_TTL`] are still answered
    /// while one background task reads them again (reading 100,000 instances takes
    /// about a second), so a poll never waits for it; only the very first read does.
    pub async fn instance_counts(self: &Arc<Self>) -> Result<Arc<HashMap<String, u32>>, PageError> {
        let stale = {
            let mut slot = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
            match &slot.counts {
                Some((at, counts)) if at.elapsed() < COUNTS_TTL => return Ok(counts.clone()),
                Some((_, counts)) => {
                    let counts = counts.clone();
                    if !slot.refreshing {
                        slot.refreshing = true;
                        let web = self.clone();
                        tokio::spawn(async move {
                            let fresh = read_counts(&web).await;
                            let mut slot = web.counts.0.lock().unwrap_or_else(|e| e.into_inner());
                            slot.refreshing = false;
                            if let Ok(fresh) = fresh {
                                slot.counts = Some((Instant::now(), fresh));
                            }
                        });
                    }
                    Some(counts)
                }
                None => None,
            }
        };
        if let Some(counts) = stale {
            return Ok(counts);
        }
        let fresh = read_counts(self).await?;
        let mut slot = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.counts = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// Hostclasses of the applied model per host name (empty without a model, or when
    /// the model does not load). `all` must be every host: membership by selector
    /// needs them all.
    pub async fn hostclasses(
        &self,
        all: &[Host],
    ) -> Result<HashMap<String, Vec<String>>, PageError> {
        let mut classes: HashMap<String, Vec<String>> = HashMap::new();
        let Some(version) = self.app.store.current_model_version().await? else {
            return Ok(classes);
        };
        // The applied model is parsed once per version, not on every poll.
        let cached = {
            let slot = self.model.0.lock().unwrap_or_else(|e| e.into_inner());
            slot.as_ref()
                .filter(|(id, _)| *id == version.id)
                .map(|(_, m)| m.clone())
        };
        let model = match cached {
            Some(m) => m,
            None => {
                let files = crate::api::deploy::to_model_files(&version.files);
                let m = crate::api::deploy::load_model(&files).ok().map(Arc::new);
                let mut slot = self.model.0.lock().unwrap_or_else(|e| e.into_inner());
                *slot = Some((version.id, m.clone()));
                m
            }
        };
        let Some(model) = model else {
            return Ok(classes);
        };
        for class in model.hostclasses.keys() {
            for name in drover_core::model::hostclass_members(&model, class, all) {
                classes.entry(name).or_default().push(class.clone());
            }
        }
        Ok(classes)
    }
}
