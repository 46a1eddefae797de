//! Inventory: hosts that cloud providers and static lists describe, fetched by [`providers`].

pub mod providers;
pub(crate) mod sync;
