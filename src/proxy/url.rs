//! Proxy URLs: `scheme://[user[:password]@]host[:port][/]` (RFC 3986 §3).

use std::net::Ipv6Addr;

use super::{Proxy, ProxyError, ProxyKind, DEFAULT_PORT};

pub(super) fn parse(url: &str) -> Result<Proxy, ProxyError> {
    let invalid = |reason: &str| ProxyError::InvalidUrl(format!("{:?}: {reason}", redact(url)));
    let (kind, rest) = match url.find("://") {
        Some(i) => {
            let kind = match url[..i].to_ascii_lowercase().as_str() {
                "http" => ProxyKind::Http,
                "socks5" => ProxyKind::Socks5,
                "socks5h" => ProxyKind::Socks5h,
                "https" => {
                    return Err(invalid(
                        "https:// proxies (TLS to the proxy) are not supported; \
                         http:// reaches an HTTP proxy in plaintext, and a wss:// \
                         connection's TLS still runs end to end through it",
                    ))
                }
                "socks4" | "socks4a" => {
                    return Err(invalid(
                        "SOCKS4 is not supported; use socks5:// or socks5h://",
                    ))
                }
                _ => {
                    return Err(invalid(
                        "unknown scheme; expected http://, socks5:// or socks5h://",
                    ))
                }
            };
            (kind, &url[i + 3..])
        }
        // curl's default: a proxy named without a scheme is an HTTP proxy.
        None => (ProxyKind::Http, url),
    };
    // RFC 3986 §3.2: the authority ends at the first '/', '?' or '#'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(invalid("a proxy URL has no path, query or fragment"));
    }
    // The last '@': a password with an unescaped '@' still parses.
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (host, port) = split_host_port(host_port).map_err(invalid)?;
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 && p.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(invalid("the port is not a number from 1 to 65535")),
        },
    };
    let mut proxy = Proxy::new(kind, host, port);
    if let Some(userinfo) = userinfo {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let user = percent_decode(user).map_err(invalid)?;
        let password = percent_decode(password).map_err(invalid)?;
        proxy = proxy.with_credentials(user, password);
    }
    Ok(proxy)
}

/// Splits `host[:port]`, checking the host: an IPv6 literal in brackets, or
/// a name or IPv4 address of letters, digits, `-`, `.` and `_`.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address lacks its closing bracket")?;
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err("the host in brackets is not an IPv6 address");
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("only a port may follow an IPv6 address")?,
            ),
        };
        return Ok((inner, port));
    }
    if s.matches(':').count() > 1 {
        return Err("an IPv6 address must be in brackets");
    }
    let (host, port) = match s.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    };
    if host.is_empty() {
        return Err("the host is missing");
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err("the host is not a host name or IP address");
    }
    Ok((host, port))
}

/// RFC 3986 §2.1, into UTF-8.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a '%' in the credentials is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the decoded credentials are not UTF-8")
}

/// The URL with the password (between the userinfo's first ':' and the
/// authority's last '@') replaced by `***`, for error messages.
pub(super) fn redact(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = rest[..at].find(':') else {
        return url.to_owned();
    };
    format!("{}{}***{}", &url[..start], &rest[..colon + 1], &rest[at..])
}
