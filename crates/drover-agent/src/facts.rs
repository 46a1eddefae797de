//! Facts about the host the agent runs on.
//!
//! Every source is optional: what cannot be read is left empty (or 0), never a panic.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;

use drover_proto::agent::Facts;

/// Gathers the facts of this host (Linux sources; elsewhere some stay empty).
pub fn gather_facts() -> Facts {
    Facts {
        hostname: hostname(),
        os: std::env::consts::OS.to_string(),
        os_release: os_release(),
        kernel: kernel(),
        arch: std::env::consts::ARCH.to_string(),
        cpus: std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(0),
        memory_bytes: fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| parse_mem_total(&t))
            .unwrap_or(0),
        addresses: addresses(),
        agent_version: drover_proto::VERSION.to_string(),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn os_release() -> Option<String> {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .and_then(|t| parse_pretty_name(&t))
}

/// `PRETTY_NAME` from the text of an os-release file (shell-style quoting removed).
fn parse_pretty_name(text: &str) -> Option<String> {
    let value = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("PRETTY_NAME="))
        .next_back()?
        .trim();
    let unquoted = if value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')))
    {
        &value[1..value.len() - 1]
    } else {
        value
    };
    let mut out = String::with_capacity(unquoted.len());
    let mut chars = unquoted.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `MemTotal` in bytes from the text of `/proc/meminfo`.
fn parse_mem_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let factor = match parts.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("b") => 1,
        Some("kb") => 1024,
        Some("mb") => 1024 * 1024,
        Some("gb") => 1024 * 1024 * 1024,
        Some(_) => return None,
    };
    n.checked_mul(factor)
}

fn addresses() -> Vec<String> {
    let Ok(ifaddrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let all: Vec<IpAddr> = ifaddrs
        .filter_map(|ifa| {
            let a = ifa.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect();
    pick_addresses(all)
}

/// Non-loopback, non-unspecified addresses, sorted and without duplicates; the loopback
/// ones when there is nothing else.
fn pick_addresses(all: Vec<IpAddr>) -> Vec<String> {
    let usable: BTreeSet<IpAddr> = all.into_iter().filter(|a| !a.is_unspecified()).collect();
    let (loopback, other): (Vec<IpAddr>, Vec<IpAddr>) =
        usable.into_iter().partition(|a| a.is_loopback());
    let chosen = if other.is_empty() { loopback } else { other };
    chosen.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_something_sensible_here() {
        let f = gather_facts();
        assert_eq!(f.os, "linux");
        assert!(!f.hostname.is_empty());
        assert!(!f.kernel.is_empty());
        assert!(!f.arch.is_empty());
        assert!(f.cpus >= 1);
        assert!(f.memory_bytes > 1024 * 1024);
        assert!(!f.addresses.is_empty(), "no address at all");
        assert_eq!(f.agent_version, drover_proto::VERSION);
    }

    #[test]
    fn pretty_name_is_unquoted() {
        let t =
            "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\n";
        assert_eq!(
            parse_pretty_name(t).as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
        assert_eq!(
            parse_pretty_name("PRETTY_NAME=Plain\n").as_deref(),
            Some("Plain")
        );
        assert_eq!(parse_pretty_name("ID=x\n"), None);
        assert_eq!(parse_pretty_name("PRETTY_NAME=\"\"\n"), None);
    }

    #[test]
    fn mem_total_in_bytes() {
        let t = "MemTotal:       16318504 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_mem_total(t), Some(16318504 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots\n"), None);
    }

    #[test]
    fn loopback_only_when_nothing_else() {
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let lo6: IpAddr = "::1".parse().expect("ip");
        let eth: IpAddr = "192.0.2.7".parse().expect("ip");
        let eth6: IpAddr = "2001:db8::7".parse().expect("ip");
        assert_eq!(
            pick_addresses(vec![lo, eth6, eth, lo6, eth]),
            vec!["192.0.2.7".to_string(), "2001:db8::7".to_string()]
        );
        assert_eq!(
            pick_addresses(vec![lo6, lo]),
            vec!["127.0.0.1".to_string(), "::1".to_string()]
        );
        assert!(pick_addresses(vec![]).is_empty());
    }
}
