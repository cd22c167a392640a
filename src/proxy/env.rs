//! The proxy the environment names, with curl's meanings of the variables.

use std::net::IpAddr;

use super::{Proxy, ProxyError};

pub(super) fn from_lookup<F>(
    secure: bool,
    host: &str,
    lookup: F,
) -> Option<Result<Proxy, ProxyError>>
where
    F: Fn(&str) -> Option<String>,
{
    // An empty value counts as unset (`HTTPS_PROXY= cmd` turns it off), so
    // the next variable is looked at.
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    // curl's order: the lowercase name first; no uppercase HTTP_PROXY (under
    // CGI it carries the client's `Proxy:` header); ws/wss fall back to
    // http/https before all_proxy.
    let names: &[&str] = if secure {
        &[
            "wss_proxy",
            "WSS_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ]
    } else {
        &[
            "ws_proxy",
            "WS_PROXY",
            "http_proxy",
            "all_proxy",
            "ALL_PROXY",
        ]
    };
    let value = names.iter().find_map(|name| get(name))?;
    if let Some(list) = get("no_proxy").or_else(|| get("NO_PROXY")) {
        if no_proxy_matches(&list, host) {
            return None;
        }
    }
    Some(Proxy::parse(value.trim()))
}

/// Whether `host` is in a `NO_PROXY` list, with curl's meanings:
///
/// - The list is separated by commas (whitespace around entries is ignored).
///   The whole list `*` matches every host; `*` inside a list is just a name.
/// - For a host name, an entry matches the name itself and every name below
///   it: `example.com` matches `example.com` and `www.example.com`, not
///   `notexample.com`. A leading dot in the entry is optional
///   (`.example.com` matches `example.com` too); a trailing dot on either
///   side is ignored; case is ignored.
/// - For an IP address, an entry matches the same address or, with a
///   `/bits` suffix, the network (CIDR, as curl 7.86+): `10.0.0.0/8`,
///   `fe80::/10`. IPv6 entries are written without brackets. A name entry
///   never matches an IP address, nor the reverse (nothing is resolved).
/// - Entries carry no port: like curl, `example.com` excludes the host on
///   every port, and an entry with a port matches nothing.
///
/// `host` is the target's name or IP address, without port; brackets around
/// an IPv6 address are allowed.
///
/// ```
/// use wscodec::proxy::no_proxy_matches;
///
/// assert!(no_proxy_matches("localhost, .corp.example", "git.corp.example"));
/// assert!(no_proxy_matches("192.168.0.0/16,::1", "[::1]"));
/// assert!(!no_proxy_matches("ample.com", "www.example.com"));
/// assert!(no_proxy_matches("*", "anything"));
/// ```
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return false;
    }
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let entries = list
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    match host.parse::<IpAddr>() {
        Ok(ip) => entries.into_iter().any(|entry| ip_matches(ip, entry)),
        Err(_) => {
            let host = host.strip_suffix('.').unwrap_or(host);
            entries.into_iter().any(|entry| name_matches(host, entry))
        }
    }
}

fn name_matches(host: &str, entry: &str) -> bool {
    let entry = entry.strip_prefix('.').unwrap_or(entry);
    let entry = entry.strip_suffix('.').unwrap_or(entry);
    if entry.is_empty() || entry.len() > host.len() {
        return false;
    }
    let (head, tail) = host.split_at(host.len() - entry.len());
    tail.eq_ignore_ascii_case(entry) && (head.is_empty() || head.ends_with('.'))
}

fn ip_matches(ip: IpAddr, entry: &str) -> bool {
    let entry = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    let (net, bits) = match entry.split_once('/') {
        Some((net, bits)) => {
            // Digits only: `u32::from_str` would also take `+8`.
            if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            (net, bits.parse::<u32>().ok())
        }
        None => (entry, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => prefix_eq(
            u128::from(u32::from(ip)),
            u128::from(u32::from(net)),
            32,
            bits,
        ),
        (IpAddr::V6(ip), IpAddr::V6(net)) => prefix_eq(u128::from(ip), u128::from(net), 128, bits),
        _ => false,
    }
}

/// Whether the first `bits` (default: all) of two `width`-bit addresses agree.
fn prefix_eq(a: u128, b: u128, width: u32, bits: Option<u32>) -> bool {
    let bits = bits.unwrap_or(width);
    if bits > width {
        return false;
    }
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}
