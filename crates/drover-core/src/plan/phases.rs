//! Dependency layering: which phase each service goes in.

use std::collections::{BTreeMap, BTreeSet};

use super::PlanError;

enum Mark {
    Visiting,
    Done(usize),
}

/// Groups the `active` nodes into layers: a node comes after every active node it
/// reaches through `preds` (directly or through inactive nodes), in the earliest layer
/// that allows. Layers are in order, nodes in a layer sorted; no layer is empty.
///
/// The layer of a node is `max(layer(p) + [p active])` over its predecessors `p`, so an
/// inactive node (a service with nothing to do) passes its predecessors' order on
/// without taking a layer of its own. A cycle anywhere in `preds` is an error.
pub(super) fn layers<'a>(
    preds: &BTreeMap<&'a str, Vec<&'a str>>,
    active: &BTreeSet<&'a str>,
) -> Result<Vec<Vec<&'a str>>, PlanError> {
    let mut marks: BTreeMap<&'a str, Mark> = BTreeMap::new();
    let mut path: Vec<&'a str> = Vec::new();
    for node in preds.keys().chain(active.iter()) {
        visit(node, preds, active, &mut marks, &mut path)?;
    }
    let mut layers: Vec<Vec<&'a str>> = Vec::new();
    for node in active {
        let level = match marks.get(node) {
            Some(Mark::Done(level)) => *level,
            _ => unreachable!("every active node was visited"),
        };
        if layers.len() <= level {
            layers.resize_with(level + 1, Vec::new);
        }
        layers[level].push(node);
    }
    layers.retain(|layer| !layer.is_empty());
    Ok(layers)
}

fn visit<'a>(
    node: &'a str,
    preds: &BTreeMap<&'a str, Vec<&'a str>>,
    active: &BTreeSet<&'a str>,
    marks: &mut BTreeMap<&'a str, Mark>,
    path: &mut Vec<&'a str>,
) -> Result<usize, PlanError> {
    match marks.get(node) {
        Some(Mark::Done(level)) => return Ok(*level),
        Some(Mark::Visiting) => {
            let start = path.iter().position(|n| *n == node).unwrap_or(0);
            let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_string());
            return Err(PlanError::DependencyCycle { cycle });
        }
        None => {}
    }
    marks.insert(node, Mark::Visiting);
    path.push(node);
    let mut level = 0;
    for pred in preds.get(node).into_iter().flatten() {
        let below = visit(pred, preds, active, marks, path)?;
        level = level.max(below + usize::from(active.contains(pred)));
    }
    path.pop();
    marks.insert(node, Mark::Done(level));
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph<'a>(edges: &[(&'a str, &[&'a str])]) -> BTreeMap<&'a str, Vec<&'a str>> {
        edges.iter().map(|(n, p)| (*n, p.to_vec())).collect()
    }

    #[test]
    fn chain_through_an_idle_service() {
        // web → api → db; api has nothing to do: web still waits for db.
        let preds = graph(&[("web", &["api"]), ("api", &["db"]), ("db", &[]), ("x", &[])]);
        let active: BTreeSet<&str> = ["web", "db", "x"].into();
        assert_eq!(
            layers(&preds, &active).unwrap(),
            vec![vec!["db", "x"], vec!["web"]]
        );
    }

    #[test]
    fn idle_dependency_takes_no_phase() {
        let preds = graph(&[("web", &["db"]), ("db", &[])]);
        let active: BTreeSet<&str> = ["web"].into();
        assert_eq!(layers(&preds, &active).unwrap(), vec![vec!["web"]]);
    }

    #[test]
    fn diamond() {
        let preds = graph(&[("a", &["b", "c"]), ("b", &["d"]), ("c", &["d"]), ("d", &[])]);
        let active: BTreeSet<&str> = ["a", "b", "c", "d"].into();
        assert_eq!(
            layers(&preds, &active).unwrap(),
            vec![vec!["d"], vec!["b", "c"], vec!["a"]]
        );
    }

    #[test]
    fn cycle_is_an_error() {
        let preds = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        let active: BTreeSet<&str> = ["a"].into();
        let err = layers(&preds, &active).unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
        let preds = graph(&[("a", &["a"])]);
        let err = layers(&preds, &active).unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle: a -> a");
    }

    #[test]
    fn unknown_predecessor_is_a_leaf() {
        let preds = graph(&[("a", &["ghost"])]);
        let active: BTreeSet<&str> = ["a"].into();
        assert_eq!(layers(&preds, &active).unwrap(), vec![vec!["a"]]);
    }
}
