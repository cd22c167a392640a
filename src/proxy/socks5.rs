//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): the
//! messages, the reply's parser, and the exchange over a [`TcpStream`].
//!
//! Every SOCKS5 message has lengths known from its first bytes, so the
//! exchange reads exactly each message and never a byte of the tunnel.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{MalformedReply, Proxy, ProxyError, ProxyKind};

const VERSION: u8 = 5;
/// RFC 1928 §3.
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xFF;
/// RFC 1929 §2: the version of the username/password sub-negotiation.
const USER_PASS_VERSION: u8 = 1;
/// RFC 1928 §4.
const CMD_CONNECT: u8 = 1;
/// RFC 1928 §5.
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// A SOCKS5 reply code (the `REP` field, RFC 1928 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Socks5ReplyCode(pub u8);

impl Socks5ReplyCode {
    /// 0: succeeded.
    pub const SUCCEEDED: Self = Self(0);
    /// 1: general SOCKS server failure.
    pub const GENERAL_FAILURE: Self = Self(1);
    /// 2: connection not allowed by ruleset.
    pub const NOT_ALLOWED: Self = Self(2);
    /// 3: network unreachable.
    pub const NETWORK_UNREACHABLE: Self = Self(3);
    /// 4: host unreachable.
    pub const HOST_UNREACHABLE: Self = Self(4);
    /// 5: connection refused.
    pub const CONNECTION_REFUSED: Self = Self(5);
    /// 6: TTL expired.
    pub const TTL_EXPIRED: Self = Self(6);
    /// 7: command not supported.
    pub const COMMAND_NOT_SUPPORTED: Self = Self(7);
    /// 8: address type not supported.
    pub const ADDRESS_TYPE_NOT_SUPPORTED: Self = Self(8);

    /// The code's name in RFC 1928 §6; `"unassigned"` for 9 to 255.
    pub fn name(&self) -> &'static str {
        match self.0 {
            0 => "succeeded",
            1 => "general SOCKS server failure",
            2 => "connection not allowed by ruleset",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unassigned",
        }
    }
}

impl fmt::Display for Socks5ReplyCode {
    /// The name and the number: `connection refused (reply 5)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (reply {})", self.name(), self.0)
    }
}

/// The address in a SOCKS5 reply (`BND.ADDR`, `BND.PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socks5Address {
    /// Address type 1 or 4.
    Ip(SocketAddr),
    /// Address type 3: a name (lossily decoded as UTF-8) and a port.
    Domain(String, u16),
}

/// A complete SOCKS5 reply (RFC 1928 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Socks5Reply {
    /// `REP`: 0 means the tunnel is open.
    pub code: Socks5ReplyCode,
    /// The address the proxy bound for the connection.
    pub bound: Socks5Address,
    /// The reply's length in bytes: the tunnel starts after it.
    pub len: usize,
}

/// What [`parse_socks5_reply`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socks5Parse {
    /// The reply is longer than the buffer: it is at least `needed` bytes
    /// (more than the buffer holds), so reading exactly up to `needed` never
    /// reads past it.
    Incomplete {
        /// The length known so far.
        needed: usize,
    },
    /// The whole reply, which may be followed by other bytes.
    Complete(Socks5Reply),
}

/// Parses a SOCKS5 reply at the start of `buf` (RFC 1928 §6): version 5, the
/// reply code, a reserved zero, and the bound address, whose length depends
/// on its type (4 bytes for IPv4, 16 for IPv6, one length byte and the name
/// for a domain). Bytes after the reply are not looked at.
///
/// Pure and total: any input gives one of these, never a panic.
///
/// ```
/// use wscodec::proxy::{parse_socks5_reply, Socks5Parse, Socks5ReplyCode};
///
/// let reply = [5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
/// assert_eq!(parse_socks5_reply(&reply[..4]), Ok(Socks5Parse::Incomplete { needed: 10 }));
/// let Ok(Socks5Parse::Complete(parsed)) = parse_socks5_reply(&reply) else { panic!() };
/// assert_eq!((parsed.code, parsed.len), (Socks5ReplyCode::SUCCEEDED, 10));
/// ```
pub fn parse_socks5_reply(buf: &[u8]) -> Result<Socks5Parse, MalformedReply> {
    if let Some(&version) = buf.first() {
        if version != VERSION {
            return Err(MalformedReply(format!(
                "a SOCKS5 reply starts with 5, not {version}"
            )));
        }
    }
    let Some(&[_, rep, rsv, atyp]) = buf.get(..4) else {
        return Ok(Socks5Parse::Incomplete { needed: 4 });
    };
    if rsv != 0 {
        return Err(MalformedReply(format!(
            "the reserved byte of a SOCKS5 reply is {rsv}, not 0"
        )));
    }
    let addr_len = match atyp {
        ATYP_IPV4 => 4,
        ATYP_IPV6 => 16,
        ATYP_DOMAIN => match buf.get(4) {
            Some(&n) => 1 + usize::from(n),
            None => return Ok(Socks5Parse::Incomplete { needed: 5 }),
        },
        other => {
            return Err(MalformedReply(format!(
                "unknown address type {other} in a SOCKS5 reply"
            )))
        }
    };
    let len = 4 + addr_len + 2;
    let Some(reply) = buf.get(..len) else {
        return Ok(Socks5Parse::Incomplete { needed: len });
    };
    let addr = &reply[4..4 + addr_len];
    let port = u16::from_be_bytes([reply[len - 2], reply[len - 1]]);
    let bound = match atyp {
        ATYP_IPV4 => {
            let octets: [u8; 4] = addr.try_into().expect("4 bytes by construction");
            Socks5Address::Ip(SocketAddr::new(Ipv4Addr::from(octets).into(), port))
        }
        ATYP_IPV6 => {
            let octets: [u8; 16] = addr.try_into().expect("16 bytes by construction");
            Socks5Address::Ip(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        _ => Socks5Address::Domain(String::from_utf8_lossy(&addr[1..]).into_owned(), port),
    };
    Ok(Socks5Parse::Complete(Socks5Reply {
        code: Socks5ReplyCode(rep),
        bound,
        len,
    }))
}

/// The method-selection message (RFC 1928 §3): no authentication, and
/// username/password when we have credentials.
fn greeting(with_password: bool) -> &'static [u8] {
    if with_password {
        &[VERSION, 2, NO_AUTH, USER_PASS]
    } else {
        &[VERSION, 1, NO_AUTH]
    }
}

/// The username/password request (RFC 1929 §2): each field 1 to 255 bytes.
/// An empty password is sent as length 0, as curl does, since some proxies
/// take it; an empty username is refused here.
fn auth_request(proxy: &Proxy, username: &str, password: &str) -> Result<Vec<u8>, ProxyError> {
    let too_long = |field, len| ProxyError::CredentialTooLong {
        proxy: proxy.to_string(),
        field,
        len,
    };
    let ulen = match u8::try_from(username.len()) {
        Ok(0) => return Err(too_long("username", 0)),
        Ok(n) => n,
        Err(_) => return Err(too_long("username", username.len())),
    };
    let plen = u8::try_from(password.len()).map_err(|_| too_long("password", password.len()))?;
    let mut out = Vec::with_capacity(3 + username.len() + password.len());
    out.push(USER_PASS_VERSION);
    out.push(ulen);
    out.extend_from_slice(username.as_bytes());
    out.push(plen);
    out.extend_from_slice(password.as_bytes());
    Ok(out)
}

/// Fails if the credentials, if any, cannot be sent (RFC 1929 §2).
pub(super) fn check_credentials(proxy: &Proxy) -> Result<(), ProxyError> {
    match &proxy.credentials {
        Some(c) => auth_request(proxy, &c.username, &c.password).map(drop),
        None => Ok(()),
    }
}

/// The CONNECT request (RFC 1928 §4) to an address (type 1 or 4) or a name
/// (type 3, at most 255 bytes: checked by the caller).
fn connect_request(target: &Target<'_>, port: u16) -> Vec<u8> {
    let mut out = vec![VERSION, CMD_CONNECT, 0];
    match target {
        Target::Ip(IpAddr::V4(ip)) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&ip.octets());
        }
        Target::Ip(IpAddr::V6(ip)) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&ip.octets());
        }
        Target::Name(name) => {
            out.push(ATYP_DOMAIN);
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
    out
}

enum Target<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

pub(super) async fn handshake(
    proxy: &Proxy,
    stream: &mut TcpStream,
    host: &str,
    port: u16,
) -> Result<(), ProxyError> {
    let name = || proxy.to_string();
    let io = |error| ProxyError::Io {
        proxy: name(),
        error,
    };
    let malformed = |reason: String| ProxyError::Malformed {
        proxy: name(),
        reason,
    };
    // Everything that can fail here fails before a byte is sent.
    let auth = match &proxy.credentials {
        Some(c) => Some(auth_request(proxy, &c.username, &c.password)?),
        None => None,
    };
    let target = match host.parse::<IpAddr>() {
        Ok(ip) => Target::Ip(ip),
        Err(_) if proxy.kind == ProxyKind::Socks5h => Target::Name(host),
        Err(_) => {
            let resolve = |error| ProxyError::Resolve {
                proxy: name(),
                host: host.to_owned(),
                error,
            };
            // One proxy connection asks for one address: the first.
            let addr = tokio::net::lookup_host((host, port))
                .await
                .map_err(resolve)?
                .next()
                .ok_or_else(|| {
                    resolve(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the name resolved to no address",
                    ))
                })?;
            Target::Ip(addr.ip())
        }
    };

    stream
        .write_all(greeting(auth.is_some()))
        .await
        .map_err(io)?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await.map_err(io)?;
    match choice {
        [VERSION, NO_AUTH] => {}
        [VERSION, USER_PASS] if auth.is_some() => {
            stream
                .write_all(auth.as_deref().unwrap_or_default())
                .await
                .map_err(io)?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await.map_err(io)?;
            match status {
                [USER_PASS_VERSION, 0] => {}
                [USER_PASS_VERSION, status] => {
                    return Err(ProxyError::SocksAuthRejected {
                        proxy: name(),
                        status,
                    })
                }
                [version, _] => {
                    return Err(malformed(format!(
                        "the authentication reply has version {version}, not 1 (RFC 1929)"
                    )))
                }
            }
        }
        [VERSION, NO_ACCEPTABLE] => {
            return Err(ProxyError::SocksNoAcceptableMethod {
                proxy: name(),
                offered_password: auth.is_some(),
            })
        }
        [VERSION, method] => {
            return Err(malformed(format!(
                "the proxy chose the method {method:#04x}, which we did not offer"
            )))
        }
        [version, _] => {
            return Err(malformed(format!(
                "the method selection has version {version}, not 5"
            )))
        }
    }

    stream
        .write_all(&connect_request(&target, port))
        .await
        .map_err(io)?;
    let mut reply = Vec::with_capacity(22);
    let mut needed = 4;
    loop {
        let have = reply.len();
        reply.resize(needed, 0);
        stream.read_exact(&mut reply[have..]).await.map_err(io)?;
        // A refusal is reported as soon as its code is in, whatever follows:
        // the code is what the caller needs.
        if let [VERSION, rep, ..] = reply[..] {
            if rep != 0 {
                return Err(ProxyError::SocksReply {
                    proxy: name(),
                    code: Socks5ReplyCode(rep),
                });
            }
        }
        match parse_socks5_reply(&reply).map_err(|e| malformed(e.0))? {
            Socks5Parse::Incomplete { needed: more } => needed = more,
            Socks5Parse::Complete(_) => return Ok(()),
        }
    }
}
