//! The names every part of drover checks the same way: host names (what DNS allows, so a
//! name can stand in generated config) and label keys (what selectors accept). The
//! model, agent enrollment and heartbeats all use these, so a name one accepts the
//! others accept too.

/// Host names: letters, digits, `-`, `_` and `.`, 1 to 253 characters. On error: the
/// 1-based column in `name` and the reason.
pub fn check_host_name(name: &str) -> Result<(), (usize, String)> {
    if name.is_empty() || name.len() > 253 {
        return Err((1, "host names are 1 to 253 characters".into()));
    }
    for (i, c) in name.chars().enumerate() {
        if !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err((
                i + 1,
                format!(
                    "invalid character `{c}` in host name `{name}`; use letters, digits, `-`, `_` and `.`"
                ),
            ));
        }
    }
    Ok(())
}

/// Label keys: letters, digits, `_`, `.`, `-` and `/`, 1 to 128 characters.
pub fn check_label_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 128 {
        return Err("label keys are 1 to 128 characters".into());
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Err(format!(
            "invalid character `{c}` in label key `{key}`; use letters, digits, `_`, `.`, `-` and `/`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert!(check_host_name("web-1.example_a").is_ok());
        assert!(check_host_name("").is_err());
        let (column, reason) = check_host_name("web 1").unwrap_err();
        assert_eq!(column, 4);
        assert!(reason.contains("` `"), "{reason}");
        assert!(check_host_name(&"a".repeat(253)).is_ok());
        assert!(check_host_name(&"a".repeat(254)).is_err());
    }

    #[test]
    fn label_keys() {
        assert!(check_label_key("role").is_ok());
        assert!(check_label_key("k8s.io/zone").is_ok());
        assert!(check_label_key("a=b").is_err());
        assert!(check_label_key("").is_err());
        assert!(check_label_key(&"k".repeat(129)).is_err());
    }
}
