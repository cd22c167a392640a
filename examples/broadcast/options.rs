//! The server's options: command-line flags over environment variables.
//!
//! This module owns the flags, their variables and defaults, the usage text,
//! and what the Origin setting lets through. It never reads the process's
//! arguments or environment itself ([`Options::parse`] is handed both, so a
//! test can hand its own), and never touches a socket.

use wscodec::handshake::Request;

pub(crate) const USAGE: &str = "usage: broadcast [ADDRESS] [--max-connections N] [--allow-origin ORIGIN]... [--queue N]
  ADDRESS                 where to listen (env BROADCAST_ADDR; default 127.0.0.1:9002)
  --max-connections N     WebSocket connections at once (env BROADCAST_MAX_CONNECTIONS; default 1000)
  --allow-origin ORIGIN   allowed browser Origin, repeatable; * for any
                          (env BROADCAST_ALLOWED_ORIGINS, comma-separated; default: this server's own)
  --queue N               messages queued per client before it is dropped as too slow
                          (env BROADCAST_QUEUE; default 256)";

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: "127.0.0.1:9002".into(),
            max_connections: 1000,
            origins: Origins::SameHost,
            queue_capacity: 256,
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
                _ if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
                _ => options.addr = arg,
            }
        }
        if !allowed.is_empty() {
            options.origins = origins(allowed.iter().map(String::as_str));
        }
        Ok(Some(options))
    }

    pub(crate) fn origin_allowed(&self, request: &Request) -> bool {
        let Some(origin) = request.header("origin") else {
            return true; // not a browser page
        };
        match &self.origins {
            Origins::Any => true,
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            Origins::SameHost => {
                let host = request.header("host").unwrap_or_default();
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
}
