//! Dispatch: how many pending targets of an execution may start now.

/// The number of targets that may be dispatched now, given the execution's
/// `parallel` bound and the number of its targets `in_flight` (dispatched or
/// running).
///
/// `None` means unlimited and gives `u32::MAX`. `Some(0)` is treated as `Some(1)`,
/// so that an execution always makes progress (the API rejects 0 anyway).
pub fn slots_free(parallel: Option<u32>, in_flight: u32) -> u32 {
    match parallel {
        None => u32::MAX,
        Some(p) => p.max(1).saturating_sub(in_flight),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_free_table() {
        let table: &[(Option<u32>, u32, u32)] = &[
            (None, 0, u32::MAX),
            (None, 1_000, u32::MAX),
            (Some(1), 0, 1),
            (Some(1), 1, 0),
            (Some(5), 2, 3),
            (Some(5), 5, 0),
            (Some(5), 7, 0),
            (Some(0), 0, 1),
            (Some(0), 1, 0),
            (Some(u32::MAX), 0, u32::MAX),
        ];
        for (parallel, in_flight, want) in table {
            assert_eq!(
                slots_free(*parallel, *in_flight),
                *want,
                "{parallel:?}, {in_flight}"
            );
        }
    }
}
