//! Errors found in a model: where (file, line, column, field) and why.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in a model, located precisely.
///
/// Displays as `file:line:column: field: reason` (or `file:line:column: reason` for
/// YAML syntax errors, which belong to no field).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelError {
    /// Path of the file, as handed to [`load`](super::load).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted path of the field, e.g. `services.web.rollout.max_parallel` or
    /// `services.web.depends_on[1]`; empty for YAML syntax errors.
    pub field: String,
    /// What is wrong, for people.
    pub reason: String,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ModelError {}

/// Where the next error goes, and the list it goes into.
pub(crate) struct Sink<'a> {
    /// The file being read.
    pub file: &'a str,
    /// Its text, to look at raw scalars.
    pub text: &'a str,
    /// Every error so far.
    pub errors: &'a mut Vec<ModelError>,
}

impl Sink<'_> {
    /// Records an error at `pos`.
    pub fn push(&mut self, pos: super::load::Pos, field: &str, reason: impl Into<String>) {
        self.errors.push(ModelError {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
            field: field.to_string(),
            reason: reason.into(),
        });
    }

    /// How many errors have been recorded so far (to tell whether a part was clean).
    pub fn count(&self) -> usize {
        self.errors.len()
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = match word.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        6..=9 => 2,
        _ => 3,
    };
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|&(d, c)| d <= limit && d < c.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// `; did you mean `X`?` when a candidate is close to `word`, else the empty string.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    suggest(word, candidates)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Levenshtein distance, with adjacent transpositions counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the (optimal string alignment) table.
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("verison", "version"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let keys = ["version", "name", "kind", "max_parallel"];
        assert_eq!(suggest("verison", keys), Some("version"));
        assert_eq!(suggest("max_paralel", keys), Some("max_parallel"));
        assert_eq!(suggest("Name", keys), Some("name"));
        assert_eq!(suggest("bogus", keys), None);
        assert_eq!(suggest("x", keys), None);
    }
}
