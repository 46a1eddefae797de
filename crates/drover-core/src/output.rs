//! Bounding stored command output.
//!
//! The controller stores at most [`STORED_OUTPUT_LIMIT`] bytes of output per host.
//! The chunk that crosses the bound is cut at the last UTF-8 character boundary
//! that fits, [`TRUNCATION_MARKER`] is stored after it once, and every later chunk
//! is dropped. (Live streaming still shows everything; that is not decided here.)
//!
//! [`STORED_OUTPUT_LIMIT`]: drover_proto::executions::STORED_OUTPUT_LIMIT
//! [`TRUNCATION_MARKER`]: drover_proto::executions::TRUNCATION_MARKER
//!
//! ```
//! use drover_core::output::{admit, Admit};
//!
//! assert_eq!(admit(0, false, 8, "hello"), Admit::Store("hello".into()));
//! // 2 bytes of room: "w" fits, the 2-byte "ö" would not.
//! assert_eq!(admit(6, false, 8, "wörld"), Admit::StoreAndTruncate("w".into()));
//! assert_eq!(admit(6, true, 8, "more"), Admit::Drop);
//! ```

/// What to do with one chunk of a host's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Store the whole chunk; the bound is not reached.
    Store(String),
    /// Store this prefix of the chunk (possibly empty, cut at a character boundary),
    /// then the truncation marker, and mark the host's output truncated.
    StoreAndTruncate(String),
    /// Store nothing: the output was already truncated.
    Drop,
}

/// Decides how much of `data` to store, given that `stored_bytes` bytes of this
/// host's output are stored already (not counting the marker) and whether it was
/// `already_truncated`.
///
/// The stored bytes never exceed `limit`; a UTF-8 character is never split. An
/// empty chunk is always stored (as empty) unless the output is truncated.
pub fn admit(stored_bytes: u64, already_truncated: bool, limit: u64, data: &str) -> Admit {
    if already_truncated {
        return Admit::Drop;
    }
    let room = limit.saturating_sub(stored_bytes);
    if data.len() as u64 <= room {
        return Admit::Store(data.to_string());
    }
    // `room < data.len()`, so it fits in a usize.
    let mut cut = room as usize;
    while !data.is_char_boundary(cut) {
        cut -= 1;
    }
    Admit::StoreAndTruncate(data[..cut].to_string())
}

#[cfg(test)]
mod tests {
    use drover_proto::executions::{STORED_OUTPUT_LIMIT, TRUNCATION_MARKER};
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn admit_table() {
        let table: &[(u64, bool, u64, &str, Admit)] = &[
            (0, false, 10, "", Admit::Store("".into())),
            (0, false, 10, "hello", Admit::Store("hello".into())),
            (5, false, 10, "world", Admit::Store("world".into())),
            (
                5,
                false,
                10,
                "world!",
                Admit::StoreAndTruncate("world".into()),
            ),
            (10, false, 10, "x", Admit::StoreAndTruncate("".into())),
            (10, false, 10, "", Admit::Store("".into())),
            (12, false, 10, "x", Admit::StoreAndTruncate("".into())),
            (0, true, 10, "x", Admit::Drop),
            (0, true, 10, "", Admit::Drop),
            // "é" is 2 bytes, "€" 3, "🦀" 4: never split one.
            (9, false, 10, "é", Admit::StoreAndTruncate("".into())),
            (8, false, 10, "é", Admit::Store("é".into())),
            (0, false, 3, "a€", Admit::StoreAndTruncate("a".into())),
            (0, false, 4, "a€", Admit::Store("a€".into())),
            (0, false, 3, "🦀", Admit::StoreAndTruncate("".into())),
            (0, false, 7, "🦀🦀", Admit::StoreAndTruncate("🦀".into())),
            (0, false, 0, "a", Admit::StoreAndTruncate("".into())),
            (
                STORED_OUTPUT_LIMIT - 1,
                false,
                STORED_OUTPUT_LIMIT,
                "ab",
                Admit::StoreAndTruncate("a".into()),
            ),
        ];
        for (stored, truncated, limit, data, want) in table {
            assert_eq!(
                admit(*stored, *truncated, *limit, data),
                *want,
                "admit({stored}, {truncated}, {limit}, {data:?})"
            );
        }
    }

    proptest! {
        /// Feeds chunks through `admit` the way the controller does and checks the
        /// stored text: within the bound, a prefix of the input (so no split
        /// character), as long as possible, and the marker at most once, at the end.
        #[test]
        fn admit_bounds_output(
            chunks in prop::collection::vec("[aé€🦀\n]{0,8}", 0..12),
            limit in 0u64..40,
        ) {
            let mut stored = String::new();
            let mut stored_bytes = 0u64;
            let mut truncated = false;
            let mut markers = 0;
            for chunk in &chunks {
                match admit(stored_bytes, truncated, limit, chunk) {
                    Admit::Store(s) => {
                        prop_assert_eq!(&s, chunk);
                        stored.push_str(&s);
                        stored_bytes += s.len() as u64;
                    }
                    Admit::StoreAndTruncate(s) => {
                        prop_assert!(chunk.starts_with(&s));
                        // The prefix is as long as it can be.
                        let next = chunk[s.len()..].chars().next().expect("something was cut");
                        prop_assert!(stored_bytes + (s.len() + next.len_utf8()) as u64 > limit);
                        stored.push_str(&s);
                        stored_bytes += s.len() as u64;
                        stored.push_str(TRUNCATION_MARKER);
                        markers += 1;
                        truncated = true;
                    }
                    Admit::Drop => prop_assert!(truncated),
                }
                prop_assert!(stored_bytes <= limit);
            }
            let input: String = chunks.concat();
            prop_assert!(markers <= 1);
            prop_assert_eq!(truncated, input.len() as u64 > limit);
            let body = stored.strip_suffix(TRUNCATION_MARKER).filter(|_| truncated).unwrap_or(&stored);
            prop_assert_eq!(body.len() as u64, stored_bytes);
            prop_assert!(input.starts_with(body));
            if !truncated {
                prop_assert_eq!(body, input.as_str());
            }
        }
    }
}
