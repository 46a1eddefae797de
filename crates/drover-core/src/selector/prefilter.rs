//! What a store can check of a selector before it decodes a host row.
//!
//! A [`Prefilter`] is a necessary condition: every host the selector matches meets it,
//! but a host that meets it may still fail the selector. A store narrows its scan with
//! the prefilters and then runs [`Selector::matches`] on what is left, so the result is
//! exact whatever the prefilters leave through. Terms that cannot be reduced to a
//! cheap condition (negated globs and labels, facts kept only in the facts document,
//! globs with no literal text) give no prefilter.

use super::{Field, Selector, Term};

/// A condition every host matching a selector meets, cheap to test on a stored row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefilter {
    /// The host's name contains this text.
    NameContains(String),
    /// The host has label `key`, and its value starts with `prefix` (is exactly
    /// `prefix` when `exact`).
    Label {
        /// The label's key.
        key: String,
        /// Text the value starts with (may be empty: the label only has to exist).
        prefix: String,
        /// True when the value is exactly `prefix`.
        exact: bool,
    },
    /// The agent's fact `key` (one of the text facts in the facts document) starts
    /// with `prefix`, which is never empty (is exactly `prefix` when `exact`).
    Fact {
        /// The fact's key (`os`, `hostname`, `kernel`…).
        key: String,
        /// Text the value starts with.
        prefix: String,
        /// True when the value is exactly `prefix`.
        exact: bool,
    },
    /// A column of the host row is exactly `value` (or, when `negated`, is not: a
    /// missing value then passes, as it does for a negated selector term).
    Column {
        /// Which column.
        column: HostColumn,
        /// The value, without wildcards.
        value: String,
        /// True for `!=`.
        negated: bool,
    },
}

/// The facts a host row keeps in a column of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostColumn {
    /// `fact.status`: `up`, `down`, `missing` (never empty).
    Status,
    /// `fact.provider`.
    Provider,
    /// `fact.region`.
    Region,
    /// `fact.address`.
    Address,
}

impl HostColumn {
    /// The column of a fact, if it has one.
    fn of_fact(key: &str) -> Option<HostColumn> {
        match key {
            "status" => Some(HostColumn::Status),
            "provider" => Some(HostColumn::Provider),
            "region" => Some(HostColumn::Region),
            "address" => Some(HostColumn::Address),
            _ => None,
        }
    }

    /// The column's name in the hosts table.
    pub fn name(self) -> &'static str {
        match self {
            HostColumn::Status => "status",
            HostColumn::Provider => "provider",
            HostColumn::Region => "region",
            HostColumn::Address => "address",
        }
    }
}

impl Selector {
    /// Necessary conditions for a host to match, one per term that has one; see the
    /// [module documentation](self). Empty for `all`.
    pub fn prefilters(&self) -> Vec<Prefilter> {
        self.terms.iter().filter_map(Term::prefilter).collect()
    }
}

impl Term {
    fn prefilter(&self) -> Option<Prefilter> {
        let (prefix, exact) = literal_prefix(&self.glob);
        if let Field::Fact(key) = &self.field
            && let Some(column) = HostColumn::of_fact(key)
            && exact
        {
            return Some(Prefilter::Column {
                column,
                value: prefix.to_string(),
                negated: self.negated,
            });
        }
        if self.negated {
            return None;
        }
        match &self.field {
            Field::Name => longest_literal(&self.glob).map(Prefilter::NameContains),
            Field::Label(key) => Some(Prefilter::Label {
                key: key.clone(),
                prefix: prefix.to_string(),
                exact,
            }),
            // A host no agent reported on has empty text facts, so only a glob that
            // cannot match "" narrows the scan.
            Field::Fact(key) if TEXT_FACTS.contains(&key.as_str()) && !prefix.is_empty() => {
                Some(Prefilter::Fact {
                    key: key.clone(),
                    prefix: prefix.to_string(),
                    exact,
                })
            }
            Field::Fact(_) => None,
        }
    }
}

/// The facts an agent reports as JSON strings in the facts document.
const TEXT_FACTS: [&str; 6] = [
    "hostname",
    "os",
    "os_release",
    "kernel",
    "arch",
    "agent_version",
];

/// The text before the glob's first wildcard, and whether the glob has none.
fn literal_prefix(glob: &str) -> (&str, bool) {
    match glob.find(['*', '?']) {
        Some(i) => (&glob[..i], false),
        None => (glob, true),
    }
}

/// The longest run of the glob without wildcards, if it has one: any value the glob
/// matches contains it.
fn longest_literal(glob: &str) -> Option<String> {
    glob.split(['*', '?'])
        .max_by_key(|run| run.len())
        .filter(|run| !run.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::{glob_match, parse};

    fn pre(s: &str) -> Vec<Prefilter> {
        parse(s).expect("selector").prefilters()
    }

    #[test]
    fn each_kind_of_term() {
        assert_eq!(pre("all"), vec![]);
        assert_eq!(pre("web-*"), vec![Prefilter::NameContains("web-".into())]);
        assert_eq!(
            pre("name=*-db-?"),
            vec![Prefilter::NameContains("-db-".into())]
        );
        assert_eq!(pre("name=*"), vec![]);
        assert_eq!(
            pre("label.rack=r07"),
            vec![Prefilter::Label {
                key: "rack".into(),
                prefix: "r07".into(),
                exact: true
            }]
        );
        assert_eq!(
            pre("label.rack=*"),
            vec![Prefilter::Label {
                key: "rack".into(),
                prefix: String::new(),
                exact: false
            }]
        );
        let column = |column, value: &str, negated| Prefilter::Column {
            column,
            value: value.into(),
            negated,
        };
        assert_eq!(
            pre("fact.status=down"),
            vec![column(HostColumn::Status, "down", false)]
        );
        assert_eq!(
            pre("fact.status!=up,fact.region=dc1"),
            vec![
                column(HostColumn::Status, "up", true),
                column(HostColumn::Region, "dc1", false)
            ]
        );
        assert_eq!(
            pre("fact.provider!=static"),
            vec![column(HostColumn::Provider, "static", true)]
        );
        assert_eq!(pre("fact.status=d*"), vec![]);
        assert_eq!(pre("fact.status!=d*"), vec![]);
        assert_eq!(
            pre("fact.os=linux"),
            vec![Prefilter::Fact {
                key: "os".into(),
                prefix: "linux".into(),
                exact: true
            }]
        );
        assert_eq!(
            pre("fact.kernel=6.1*"),
            vec![Prefilter::Fact {
                key: "kernel".into(),
                prefix: "6.1".into(),
                exact: false
            }]
        );
        // Globs that match "" (a host no agent reported on), negations and facts that
        // are not text in the document give none.
        assert_eq!(pre("fact.os=*"), vec![]);
        assert_eq!(pre("fact.os=*nux"), vec![]);
        assert_eq!(pre("fact.os!=linux"), vec![]);
        assert_eq!(pre("fact.cpus=2"), vec![]);
        assert_eq!(pre("fact.provider.instance_type=t3.micro"), vec![]);
        assert_eq!(pre("label.rack!=r07,name!=web-*"), vec![]);
        assert_eq!(pre("web-*,label.role=db").len(), 2);
    }

    proptest::proptest! {
        /// Necessary, never sufficient: whatever a glob matches contains its longest
        /// literal run and starts with its literal prefix.
        #[test]
        fn literals_are_necessary(glob in "[ab*?]{1,6}", value in "[ab]{0,6}") {
            if glob_match(&glob, &value) {
                if let Some(run) = longest_literal(&glob) {
                    proptest::prop_assert!(value.contains(&run));
                }
                let (prefix, exact) = literal_prefix(&glob);
                proptest::prop_assert!(value.starts_with(prefix));
                if exact {
                    proptest::prop_assert_eq!(value.as_str(), prefix);
                }
            }
        }
    }
}
