//! The server's options: command-line flags over environment variables.
//!
//! This module owns the flags, their variables and defaults, the usage text,
//! and what the Origin setting lets through. It never reads the process's
//! arguments or environment itself ([`Options::parse`] is handed both, so a
//! test can hand its own), and never touches a socket.

use wscodec::handshake::Request;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) const USAGE: &str = "usage: broadcast [ADDRESS] [--max-connections N] [--allow-origin ORIGIN]... [--queue N]
                 [--redis URL [--node-id ID] [--presence-ttl SECONDS]]
                 [--tls-cert FILE --tls-key FILE [--no-h2-websocket]]
  ADDRESS                 where to listen (env BROADCAST_ADDR; default 127.0.0.1:9002)
  --max-connections N     WebSocket connections at once (env BROADCAST_MAX_CONNECTIONS; default 1000)
  --allow-origin ORIGIN   allowed browser Origin, repeatable; * for any
                          (env BROADCAST_ALLOWED_ORIGINS, comma-separated; default: this server's own)
  --queue N               messages queued per client before it is dropped as too slow
                          (env BROADCAST_QUEUE; default 256)
  --redis URL             run as one node of a cluster sharing rooms through this Redis,
                          e.g. redis://127.0.0.1:6379/ (env BROADCAST_REDIS; default: alone)
  --node-id ID            this node's name in the cluster, 1 to 32 of A-Z a-z 0-9 _ -
                          (env BROADCAST_NODE_ID; default random)
  --presence-ttl SECONDS  how long the cluster keeps a silent node's members
                          (env BROADCAST_PRESENCE_TTL; default 15)
  --tls-cert FILE         serve HTTPS and wss:// with this PEM certificate chain, offering
                          HTTP/2 and HTTP/1.1 by ALPN (env BROADCAST_TLS_CERT; default: plain HTTP)
  --tls-key FILE          the certificate's PEM private key (env BROADCAST_TLS_KEY)
  --no-h2-websocket       for testing: HTTP/2 without WebSockets over it (no RFC 8441
                          SETTINGS_ENABLE_CONNECT_PROTOCOL), so browsers use HTTP/1.1 for them";

/// Which browser origins may open a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Only pages this server served: `Origin` is `http://` or `https://` + `Host`.
    SameHost,
    /// Any origin.
    Any,
    /// Exactly these (compared without case, as `http://host:port`).
    List(Vec<String>),
}

/// The server's settings; see `main.rs` for the flags and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to listen.
    pub addr: String,
    /// WebSocket connections open at once.
    pub max_connections: usize,
    /// Browser origins allowed to connect.
    pub origins: Origins,
    /// Messages queued per client before it is dropped as too slow.
    pub queue_capacity: usize,
    /// The Redis that makes this server one node of a cluster; `None`: alone.
    pub redis: Option<String>,
    /// This node's name in the cluster; `None`: a random one.
    pub node_id: Option<String>,
    /// How long the cluster keeps the members of a node that stopped
    /// refreshing its presence (it died without saying goodbye).
    pub presence_ttl: Duration,
    /// How long the node waits for its own liveness probe to come back through
    /// its Redis subscription before it takes the subscription for dead.
    pub probe_timeout: Duration,
    /// Chat lines a node holds for Redis while it cannot publish them; one
    /// more is refused with an error notice to its sender.
    pub outbox_capacity: usize,
    /// The PEM certificate chain and private key to serve HTTPS with;
    /// `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Whether HTTP/2 connections advertise `SETTINGS_ENABLE_CONNECT_PROTOCOL`
    /// (RFC 8441 §3), which lets a client open WebSockets on them. Off only
    /// to test a client's fallback to HTTP/1.1.
    pub h2_websocket: bool,
}

/// Where the TLS certificate chain and its key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key (PKCS #8, PKCS #1 or SEC 1).
    pub key: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: "127.0.0.1:9002".into(),
            max_connections: 1000,
            origins: Origins::SameHost,
            queue_capacity: 256,
            redis: None,
            node_id: None,
            presence_ttl: Duration::from_secs(15),
            probe_timeout: Duration::from_secs(3),
            outbox_capacity: 1024,
            tls: None,
            h2_websocket: true,
        }
    }
}

impl Options {
    /// Reads the options from command-line `args` (without the program name)
    /// over the environment (`env` looks a variable up). `Ok(None)` means help
    /// was asked for.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Options>, String> {
        let mut options = Options::default();
        if let Some(addr) = env("BROADCAST_ADDR") {
            options.addr = addr;
        }
        if let Some(n) = env("BROADCAST_MAX_CONNECTIONS") {
            options.max_connections = positive("BROADCAST_MAX_CONNECTIONS", &n)?;
        }
        if let Some(list) = env("BROADCAST_ALLOWED_ORIGINS") {
            options.origins = origins(list.split(',').map(str::trim).filter(|o| !o.is_empty()));
        }
        if let Some(n) = env("BROADCAST_QUEUE") {
            options.queue_capacity = positive("BROADCAST_QUEUE", &n)?;
        }
        if let Some(url) = env("BROADCAST_REDIS").filter(|u| !u.is_empty()) {
            options.redis = Some(url);
        }
        if let Some(id) = env("BROADCAST_NODE_ID").filter(|u| !u.is_empty()) {
            options.node_id = Some(node_id("BROADCAST_NODE_ID", id)?);
        }
        if let Some(n) = env("BROADCAST_PRESENCE_TTL") {
            options.presence_ttl = seconds("BROADCAST_PRESENCE_TTL", &n)?;
        }

        let mut tls_cert = env("BROADCAST_TLS_CERT").filter(|f| !f.is_empty());
        let mut tls_key = env("BROADCAST_TLS_KEY").filter(|f| !f.is_empty());

        let mut allowed = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value)),
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .map(str::to_owned)
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--max-connections" => options.max_connections = positive(&flag, &value()?)?,
                "--queue" => options.queue_capacity = positive(&flag, &value()?)?,
                "--allow-origin" => allowed.push(value()?),
                "--redis" => options.redis = Some(value()?),
                "--node-id" => options.node_id = Some(node_id(&flag, value()?)?),
                "--presence-ttl" => options.presence_ttl = seconds(&flag, &value()?)?,
                "--tls-cert" => tls_cert = Some(value()?),
                "--tls-key" => tls_key = Some(value()?),
                "--no-h2-websocket" if inline.is_none() => options.h2_websocket = false,
                _ if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
                _ => options.addr = arg,
            }
        }
        if !allowed.is_empty() {
            options.origins = origins(allowed.iter().map(String::as_str));
        }
        options.tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            (Some(_), None) => return Err("--tls-cert needs --tls-key".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert".into()),
        };
        Ok(Some(options))
    }

    /// Whether the browser page behind `request` may connect. `authority`
    /// is the host the request was sent to: its `Host` header over HTTP/1.1,
    /// its `:authority` over HTTP/2 (RFC 9113 §8.3.1), which has no `Host`.
    pub(crate) fn origin_allowed(&self, request: &Request, authority: Option<&str>) -> bool {
        let Some(origin) = request.header("origin") else {
            return true; // not a browser page
        };
        match &self.origins {
            Origins::Any => true,
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            Origins::SameHost => {
                let host = authority.unwrap_or_default();
                let origin_host = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"));
                origin_host.is_some_and(|h| h.eq_ignore_ascii_case(host))
            }
        }
    }
}

fn positive(what: &str, value: &str) -> Result<usize, String> {
    match value.trim().parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{what}: expected a positive number, got {value:?}")),
    }
}

fn seconds(what: &str, value: &str) -> Result<Duration, String> {
    // At least 3 s: a node refreshes its presence every third of it.
    match value.trim().parse() {
        Ok(n) if (3..=86_400).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(format!(
            "{what}: expected 3 to 86400 seconds, got {value:?}"
        )),
    }
}

/// A node id goes into Redis key and channel names, and between the fields
/// of the envelopes: a small alphabet keeps it from breaking either.
fn node_id(what: &str, value: String) -> Result<String, String> {
    let ok = (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(value)
    } else {
        Err(format!(
            "{what}: expected 1 to 32 of A-Z a-z 0-9 _ -, got {value:?}"
        ))
    }
}

fn origins<'a>(list: impl Iterator<Item = &'a str>) -> Origins {
    let list: Vec<String> = list.map(|o| o.trim_end_matches('/').to_owned()).collect();
    if list.iter().any(|o| o == "*") {
        Origins::Any
    } else {
        Origins::List(list)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Option<Options>, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Options::parse(args.iter().map(|a| a.to_string()), |k| env.get(k).cloned())
    }

    #[test]
    fn flags_override_environment_variables() {
        let env = [
            ("BROADCAST_ADDR", "127.0.0.1:1"),
            ("BROADCAST_MAX_CONNECTIONS", "5"),
            ("BROADCAST_ALLOWED_ORIGINS", "http://a.test, http://b.test/"),
        ];
        let options = parse(&[], &env).unwrap().unwrap();
        assert_eq!(options.addr, "127.0.0.1:1");
        assert_eq!(options.max_connections, 5);
        assert_eq!(
            options.origins,
            Origins::List(vec!["http://a.test".into(), "http://b.test".into()])
        );
        let options = parse(
            &[
                "0.0.0.0:80",
                "--max-connections=7",
                "--allow-origin",
                "*",
                "--queue",
                "3",
            ],
            &env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(options.addr, "0.0.0.0:80");
        assert_eq!(options.max_connections, 7);
        assert_eq!(options.origins, Origins::Any);
        assert_eq!(options.queue_capacity, 3);
        assert_eq!(parse(&["--help"], &[]), Ok(None));
        assert!(parse(&["--queue", "0"], &[]).is_err());
        assert!(parse(&["--frobnicate"], &[]).is_err());
        assert!(parse(&["--queue"], &[]).is_err());
    }

    #[test]
    fn redis_is_opt_in_and_node_ids_are_checked() {
        let alone = parse(&[], &[]).unwrap().unwrap();
        assert_eq!(alone.redis, None);
        let env = [
            ("BROADCAST_REDIS", "redis://127.0.0.1:1/"),
            ("BROADCAST_NODE_ID", "east-1"),
            ("BROADCAST_PRESENCE_TTL", "5"),
        ];
        let node = parse(&[], &env).unwrap().unwrap();
        assert_eq!(node.redis.as_deref(), Some("redis://127.0.0.1:1/"));
        assert_eq!(node.node_id.as_deref(), Some("east-1"));
        assert_eq!(node.presence_ttl, Duration::from_secs(5));
        let node = parse(&["--redis=redis://r/", "--node-id", "b"], &env)
            .unwrap()
            .unwrap();
        assert_eq!(node.redis.as_deref(), Some("redis://r/"));
        assert_eq!(node.node_id.as_deref(), Some("b"));
        assert!(parse(&["--node-id", "a b"], &[]).is_err());
        assert!(parse(&["--node-id", "a/b"], &[]).is_err());
        assert!(parse(&["--presence-ttl", "1"], &[]).is_err());
    }

    #[test]
    fn tls_needs_both_files_and_h2_websockets_are_on_unless_turned_off() {
        let plain = parse(&[], &[]).unwrap().unwrap();
        assert_eq!(plain.tls, None);
        assert!(plain.h2_websocket);
        let env = [
            ("BROADCAST_TLS_CERT", "env-cert.pem"),
            ("BROADCAST_TLS_KEY", "env-key.pem"),
        ];
        let files = |cert: &str, key: &str| {
            Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            })
        };
        let tls = parse(&[], &env).unwrap().unwrap();
        assert_eq!(tls.tls, files("env-cert.pem", "env-key.pem"));
        let tls = parse(&["--tls-cert", "c.pem", "--tls-key=k.pem"], &env)
            .unwrap()
            .unwrap();
        assert_eq!(tls.tls, files("c.pem", "k.pem"));
        assert!(parse(&["--tls-cert", "c.pem"], &[]).is_err());
        assert!(parse(&["--tls-key", "k.pem"], &[]).is_err());
        let off = parse(&["--no-h2-websocket"], &[]).unwrap().unwrap();
        assert!(!off.h2_websocket);
        assert!(parse(&["--no-h2-websocket=yes"], &[]).is_err());
    }
}
