//! Unit tests: URL parsing, `NO_PROXY`, the environment's precedence, the
//! reply parsers on truncated and malformed input, and the exchanges against
//! scripted proxies on loopback (the real proxies are in tests/proxy.rs).

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::error::Error;

#[test]
fn parse_accepts_each_scheme_with_its_defaults() {
    let cases = [
        (
            "http://proxy.example:3128",
            ProxyKind::Http,
            "proxy.example",
            3128,
        ),
        (
            "HTTP://proxy.example",
            ProxyKind::Http,
            "proxy.example",
            1080,
        ),
        ("proxy.example:8080", ProxyKind::Http, "proxy.example", 8080),
        (
            "socks5://10.0.0.1:1081/",
            ProxyKind::Socks5,
            "10.0.0.1",
            1081,
        ),
        ("socks5h://[::1]:9050", ProxyKind::Socks5h, "::1", 9050),
        (
            "socks5h://[2001:db8::1]",
            ProxyKind::Socks5h,
            "2001:db8::1",
            1080,
        ),
        ("socks5://host:", ProxyKind::Socks5, "host", 1080),
    ];
    for (url, kind, host, port) in cases {
        let proxy = Proxy::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            (proxy.kind(), proxy.host(), proxy.port()),
            (kind, host, port),
            "{url}"
        );
        assert_eq!(proxy.username(), None);
    }
}

#[test]
fn parse_percent_decodes_credentials_and_splits_at_the_last_at() {
    let proxy = Proxy::parse("http://us%65r:p%40ss:w%3Ard@host:1").unwrap();
    assert_eq!(proxy.username(), Some("user"));
    let c = proxy.credentials.as_ref().unwrap();
    assert_eq!(c.password, "p@ss:w:rd");

    let proxy = Proxy::parse("socks5://me:a@b@host:2").unwrap();
    assert_eq!(proxy.credentials.as_ref().unwrap().password, "a@b");
    assert_eq!(proxy.host(), "host");

    let proxy = Proxy::parse("socks5://onlyuser@host").unwrap();
    assert_eq!(proxy.username(), Some("onlyuser"));
    assert_eq!(proxy.credentials.as_ref().unwrap().password, "");

    let proxy = Proxy::parse("http://%C3%A9t%C3%A9:x@host").unwrap();
    assert_eq!(proxy.username(), Some("été"));
}

#[test]
fn parse_refuses_what_it_cannot_use_and_says_why() {
    let cases = [
        ("https://proxy:443", "not supported"),
        ("socks4://proxy", "SOCKS4"),
        ("socks4a://proxy", "SOCKS4"),
        ("ftp://proxy", "unknown scheme"),
        ("http://", "host is missing"),
        ("http://:8080", "host is missing"),
        ("http://host:0", "port"),
        ("http://host:65536", "port"),
        ("http://host:+80", "port"),
        ("http://host:8x", "port"),
        ("http://::1:8080", "brackets"),
        ("http://[::1", "closing bracket"),
        ("http://[not-v6]:1", "not an IPv6"),
        ("http://[::1]x", "only a port"),
        ("http://host/path", "no path"),
        ("http://host?q", "no path"),
        ("http://ho st:1", "not a host name"),
        ("http://u:%zz@host", "two hex digits"),
        ("http://u:%ff@host", "UTF-8"),
    ];
    for (url, why) in cases {
        let err = Proxy::parse(url).expect_err(url).to_string();
        assert!(err.contains(why), "{url}: {err}");
    }
}

#[test]
fn no_text_shows_the_password() {
    let err = Proxy::parse("http://me:hunter2@host:bad")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("me:***@host:bad"), "{err}");

    let proxy = Proxy::parse("socks5://me:hunter2@host:1").unwrap();
    assert_eq!(proxy.to_string(), "socks5://me@host:1");
    assert!(!format!("{proxy:?}").contains("hunter2"));
    assert_eq!(url::redact("socks5://host:1"), "socks5://host:1");
    assert_eq!(url::redact("u:p@h"), "u:***@h");
}

#[test]
fn no_proxy_follows_curls_examples() {
    let cases = [
        // curl's CURLOPT_NOPROXY page: "ample.com" matches ample.com and
        // www.ample.com, not www.example.com or ample.com.org.
        ("ample.com", "ample.com", true),
        ("ample.com", "www.ample.com", true),
        ("ample.com", "www.example.com", false),
        ("ample.com", "ample.com.org", false),
        ("ample.com", "AMPLE.COM", true),
        (".ample.com", "ample.com", true),
        (".ample.com", "a.b.ample.com", true),
        ("ample.com.", "ample.com", true),
        ("ample.com", "ample.com.", true),
        ("example.com,::1,localhost", "localhost", true),
        ("example.com,::1,localhost", "::1", true),
        ("example.com,::1,localhost", "[::1]", true),
        ("example.com, localhost ", "localhost", true),
        ("*", "anything.example", true),
        (" * ", "10.1.1.1", true),
        ("*,example.com", "other.example", false),
        ("", "localhost", false),
        (",,", "localhost", false),
        ("localhost", "", false),
        // IP addresses: exact, or CIDR (curl 7.86+); names never match IPs.
        ("192.168.0.0/16", "192.168.7.9", true),
        ("192.168.0.0/16", "192.169.0.1", false),
        ("10.0.0.1", "10.0.0.1", true),
        ("10.0.0.1", "10.0.0.2", false),
        ("10.0.0.0/8", "10.255.0.1", true),
        ("0.0.0.0/0", "8.8.8.8", true),
        ("10.0.0.0/33", "10.0.0.1", false),
        ("10.0.0.0/+8", "10.0.0.1", false),
        ("10.0.0.0/", "10.0.0.1", false),
        ("fe80::/10", "fe80::1", true),
        ("fe80::/10", "fec0::1", false),
        ("fe80::/10", "10.0.0.1", false),
        ("10.0.0.0/8", "fe80::1", false),
        ("127.0.0.1", "localhost", false),
        ("localhost", "127.0.0.1", false),
        // Entries carry no port, as in curl.
        ("example.com:443", "example.com", false),
    ];
    for (list, host, expected) in cases {
        assert_eq!(
            no_proxy_matches(list, host),
            expected,
            "{list:?} vs {host:?}"
        );
    }
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn chosen(secure: bool, host: &str, pairs: &[(&str, &str)]) -> Option<String> {
    Proxy::from_lookup(secure, host, env(pairs)).map(|p| p.unwrap().host().to_owned())
}

#[test]
fn env_follows_curls_precedence() {
    let all = [
        ("wss_proxy", "wss-lower"),
        ("WSS_PROXY", "wss-upper"),
        ("https_proxy", "https-lower"),
        ("HTTPS_PROXY", "https-upper"),
        ("ws_proxy", "ws-lower"),
        ("WS_PROXY", "ws-upper"),
        ("http_proxy", "http-lower"),
        ("HTTP_PROXY", "http-upper"),
        ("all_proxy", "all-lower"),
        ("ALL_PROXY", "all-upper"),
    ];
    // Drop the variables one by one, from the most preferred.
    let secure_order = [
        "wss-lower",
        "wss-upper",
        "https-lower",
        "https-upper",
        "all-lower",
        "all-upper",
    ];
    let plain_order = [
        "ws-lower",
        "ws-upper",
        "http-lower",
        "all-lower",
        "all-upper",
    ];
    for (secure, order) in [(true, &secure_order[..]), (false, &plain_order[..])] {
        let mut pairs = all.to_vec();
        for expected in order {
            assert_eq!(chosen(secure, "h", &pairs).as_deref(), Some(*expected));
            pairs.retain(|(_, v)| v != expected);
        }
        // What is left is never used for this scheme: notably HTTP_PROXY.
        assert_eq!(chosen(secure, "h", &pairs), None, "{pairs:?}");
    }
}

#[test]
fn env_uppercase_http_proxy_is_ignored_and_empty_values_are_unset() {
    assert_eq!(chosen(false, "h", &[("HTTP_PROXY", "evil")]), None);
    assert_eq!(
        chosen(true, "h", &[("https_proxy", " "), ("HTTPS_PROXY", "up")]).as_deref(),
        Some("up")
    );
    assert_eq!(chosen(true, "h", &[("https_proxy", "")]), None);
}

#[test]
fn env_no_proxy_excludes_and_lowercase_wins() {
    let base = [("all_proxy", "socks5h://p:1")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        pairs
    };
    assert_eq!(chosen(true, "a.corp", &with(&[("NO_PROXY", "corp")])), None);
    assert_eq!(chosen(true, "a.corp", &with(&[("no_proxy", "corp")])), None);
    assert_eq!(
        chosen(
            true,
            "a.corp",
            &with(&[("no_proxy", "other"), ("NO_PROXY", "corp")])
        )
        .as_deref(),
        Some("p")
    );
    assert_eq!(chosen(false, "[::1]", &with(&[("no_proxy", "::1")])), None);
    assert_eq!(chosen(false, "x", &with(&[("no_proxy", "*")])), None);
}

#[test]
fn env_with_a_bad_url_is_an_error_not_silence() {
    let result = Proxy::from_lookup(true, "h", env(&[("https_proxy", "https://p:1")]));
    assert!(matches!(result, Some(Err(ProxyError::InvalidUrl(_)))));
}

#[test]
fn connect_request_has_authority_host_and_basic_credentials() {
    // RFC 7617 §2's example credentials.
    let proxy = Proxy::new(ProxyKind::Http, "p", 1).with_credentials("Aladdin", "open sesame");
    let request = http_connect::request(&proxy, "::1", 443).unwrap();
    assert_eq!(
        String::from_utf8(request).unwrap(),
        "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\
         Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
    );
    let proxy = Proxy::new(ProxyKind::Http, "p", 1).with_credentials("a:b", "c");
    assert!(matches!(
        http_connect::request(&proxy, "h", 1),
        Err(ProxyError::InvalidCredentials { .. })
    ));
}

#[test]
fn connect_reply_parser_handles_every_prefix_and_garbage() {
    let reply = b"HTTP/1.1 407 Proxy Authentication Required\r\n\
        Proxy-Authenticate: Basic realm=\"a\"\r\nproxy-authenticate: Bearer\r\n\
        Content-Length: 0\r\n\r\nTUNNEL";
    let head_len = reply.len() - b"TUNNEL".len();
    for cut in 0..head_len {
        assert_eq!(
            parse_connect_reply(&reply[..cut], 64),
            Ok(None),
            "cut {cut}"
        );
    }
    let parsed = parse_connect_reply(reply, 64).unwrap().unwrap();
    assert_eq!(parsed.status, 407);
    assert_eq!(parsed.reason, "Proxy Authentication Required");
    assert_eq!(parsed.proxy_authenticate, ["Basic realm=\"a\"", "Bearer"]);
    assert_eq!(parsed.head_len, head_len);

    assert!(parse_connect_reply(reply, 2)
        .unwrap_err()
        .reason()
        .contains("more than 2"));
    assert!(parse_connect_reply(b"SSH-2.0-OpenSSH\r\n\r\n", 64).is_err());
    assert!(parse_connect_reply(b"HTTP/1.1 abc OK\r\n\r\n", 64).is_err());
    assert!(parse_connect_reply(b"\x05\x00", 64).is_err());
    // HTTP/1.0, which tinyproxy answers with, and bare LF.
    let parsed = parse_connect_reply(b"HTTP/1.0 200 Connection established\n\n", 64)
        .unwrap()
        .unwrap();
    assert_eq!((parsed.status, parsed.head_len), (200, 37));
    // A huge header limit allocates by the input, not by the limit.
    assert_eq!(parse_connect_reply(b"HTTP/1.1 2", usize::MAX), Ok(None));
}

#[test]
fn socks5_reply_parser_reads_each_address_type_exactly() {
    let v4 = [5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];
    let mut v6 = vec![5, 0, 0, 4];
    v6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    v6.extend_from_slice(&[0, 80]);
    let name = [
        5, 0, 0, 3, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', 0, 1,
    ];
    let empty_name = [5, 0, 0, 3, 0, 0, 2];
    let expected = [
        (
            &v4[..],
            Socks5Address::Ip("127.0.0.1:8080".parse().unwrap()),
        ),
        (&v6[..], Socks5Address::Ip("[::1]:80".parse().unwrap())),
        (&name[..], Socks5Address::Domain("localhost".into(), 1)),
        (&empty_name[..], Socks5Address::Domain(String::new(), 2)),
    ];
    for (bytes, bound) in expected {
        for cut in 0..bytes.len() {
            match parse_socks5_reply(&bytes[..cut]) {
                Ok(Socks5Parse::Incomplete { needed }) => {
                    assert!(needed > cut && needed <= bytes.len(), "{bytes:?} cut {cut}")
                }
                other => panic!("{bytes:?} cut {cut}: {other:?}"),
            }
        }
        let mut followed = bytes.to_vec();
        followed.extend_from_slice(b"tunnel");
        let Ok(Socks5Parse::Complete(reply)) = parse_socks5_reply(&followed) else {
            panic!("{bytes:?}");
        };
        assert_eq!(reply.len, bytes.len());
        assert_eq!(reply.bound, bound);
        assert_eq!(reply.code, Socks5ReplyCode::SUCCEEDED);
    }
}

#[test]
fn socks5_reply_parser_refuses_garbage() {
    for bad in [
        &[4u8, 0, 0, 1][..],
        &[5, 0, 1, 1],
        &[5, 0, 0, 2],
        &[5, 0, 0, 0xff],
        b"HTTP/1.1",
    ] {
        assert!(parse_socks5_reply(bad).is_err(), "{bad:?}");
    }
    assert!(parse_socks5_reply(&[4]).is_err());
    assert_eq!(
        parse_socks5_reply(&[]),
        Ok(Socks5Parse::Incomplete { needed: 4 })
    );
}

#[test]
fn socks5_reply_codes_have_their_rfc_names() {
    let names: Vec<String> = (0..=9).map(|c| Socks5ReplyCode(c).to_string()).collect();
    assert_eq!(
        names,
        [
            "succeeded (reply 0)",
            "general SOCKS server failure (reply 1)",
            "connection not allowed by ruleset (reply 2)",
            "network unreachable (reply 3)",
            "host unreachable (reply 4)",
            "connection refused (reply 5)",
            "TTL expired (reply 6)",
            "command not supported (reply 7)",
            "address type not supported (reply 8)",
            "unassigned (reply 9)",
        ]
    );
}

/// A scripted proxy: accepts one connection, reads `expect` bytes, writes
/// `answer` (all of it at once, whatever rounds the protocol has: the client
/// must read each message exactly), then reads until the client closes. The
/// task returns every byte it read.
async fn scripted(expect: usize, answer: Vec<u8>) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut got = vec![0; expect];
        tcp.read_exact(&mut got).await.unwrap();
        tcp.write_all(&answer).await.unwrap();
        let _ = tcp.read_to_end(&mut got).await;
        got
    });
    (port, task)
}

const SECOND: Duration = Duration::from_secs(5);

#[tokio::test]
async fn http_tunnel_keeps_the_bytes_after_the_reply_head() {
    let request = b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n";
    // One write: the reply and the tunnel's first bytes in one segment.
    let answer =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: y\r\n\r\nfirst bytes".to_vec();
    let (port, task) = scripted(request.len(), answer).await;
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", port);
    let mut tunnel = proxy.open("example.com", 80, SECOND).await.unwrap();
    let mut first = [0; 11];
    tunnel.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"first bytes");
    drop(tunnel);
    assert_eq!(task.await.unwrap(), request);
}

#[tokio::test]
async fn http_refusal_names_the_status_and_407_keeps_the_challenge() {
    let answer = b"HTTP/1.1 407 Proxy Authentication Required\r\n\
        Proxy-Authenticate: Basic realm=\"corp\"\r\n\r\n"
        .to_vec();
    let (port, _task) = scripted(1, answer).await;
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", port);
    let Err(Error::Proxy(e)) = proxy.open("h", 1, SECOND).await else {
        panic!("not a proxy error");
    };
    assert_eq!(e.http_status(), Some(407));
    let text = e.to_string();
    assert!(
        text.contains("407") && text.contains("wants authentication"),
        "{text}"
    );
    assert!(text.contains("Basic realm=\"corp\""), "{text}");
    assert!(text.contains(&format!("http://127.0.0.1:{port}")), "{text}");

    let (port, _task) = scripted(1, b"HTTP/1.1 403 Forbidden\r\n\r\n".to_vec()).await;
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", port);
    let err = proxy.open("h", 1, SECOND).await.unwrap_err().to_string();
    assert!(err.contains("refused CONNECT with 403 Forbidden"), "{err}");
}

#[tokio::test]
async fn http_reply_head_over_the_limit_fails() {
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    answer.extend(std::iter::repeat_n(b"X-Pad: aaaaaaaaaaaaaaaaaaaa\r\n", 10).flatten());
    answer.extend_from_slice(b"\r\n");
    let (port, _task) = scripted(1, answer).await;
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", port).max_reply_head(100);
    let Err(Error::Proxy(e)) = proxy.open("h", 1, SECOND).await else {
        panic!("not a proxy error");
    };
    assert!(
        matches!(*e, ProxyError::ReplyTooLarge { limit: 100, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn a_silent_proxy_times_out_and_a_closing_one_is_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let proxy = Proxy::new(ProxyKind::Socks5, "127.0.0.1", port);
    let err = proxy
        .open("127.0.0.1", 1, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Proxy(e) if matches!(**e, ProxyError::Timeout { .. })),
        "{err}"
    );

    // Half a status line, then the proxy closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        // Read the request (one segment) so that closing sends FIN, not RST.
        let mut request = [0; 256];
        let _ = tcp.read(&mut request).await.unwrap();
        tcp.write_all(b"HTTP/1.1 200").await.unwrap();
    });
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", port);
    let err = proxy.open("h", 1, SECOND).await.unwrap_err();
    let Error::Proxy(e) = &err else {
        panic!("{err}");
    };
    let ProxyError::Io { error, .. } = &**e else {
        panic!("{err}");
    };
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
}

#[tokio::test]
async fn socks5h_sends_the_name_and_keeps_the_bytes_after_the_reply() {
    let mut expected = vec![5, 2, 0, 2];
    expected.extend_from_slice(&[1, 2, b'm', b'e', 2, b'p', b'w']);
    expected.extend_from_slice(&[5, 1, 0, 3, 9]);
    expected.extend_from_slice(b"localhost");
    expected.extend_from_slice(&443u16.to_be_bytes());
    // The method choice, the auth status and the reply in one segment,
    // followed by the tunnel's bytes.
    let mut answer = vec![5, 2, 1, 0];
    answer.extend_from_slice(&[5, 0, 0, 3, 4, b'n', b'a', b'm', b'e', 0, 1]);
    answer.extend_from_slice(b"tunnel");
    let (port, task) = scripted(4, answer).await;
    let proxy = Proxy::new(ProxyKind::Socks5h, "127.0.0.1", port).with_credentials("me", "pw");
    let mut tunnel = proxy.open("localhost", 443, SECOND).await.unwrap();
    let mut first = [0; 6];
    tunnel.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"tunnel");
    drop(tunnel);
    assert_eq!(task.await.unwrap(), expected);
}

#[tokio::test]
async fn socks5_resolves_the_name_itself_and_sends_the_address() {
    let resolved = tokio::net::lookup_host(("localhost", 80))
        .await
        .unwrap()
        .next()
        .unwrap();
    let mut expected = vec![5, 1, 0, 5, 1, 0];
    match resolved.ip() {
        std::net::IpAddr::V4(ip) => {
            expected.push(1);
            expected.extend_from_slice(&ip.octets());
        }
        std::net::IpAddr::V6(ip) => {
            expected.push(4);
            expected.extend_from_slice(&ip.octets());
        }
    }
    expected.extend_from_slice(&[0, 80]);
    let answer = vec![5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 80];
    let (port, task) = scripted(3, answer).await;
    let proxy = Proxy::new(ProxyKind::Socks5, "127.0.0.1", port);
    let tunnel = proxy.open("localhost", 80, SECOND).await.unwrap();
    drop(tunnel);
    assert_eq!(task.await.unwrap(), expected);
}

type Creds<'a> = Option<(&'a str, &'a str)>;

#[tokio::test]
async fn socks5_refusals_name_the_method_auth_and_reply_code() {
    let cases: [(Vec<u8>, Creds<'_>, &str); 4] = [
        (vec![5, 0xff], None, "requires authentication"),
        (
            vec![5, 2, 1, 1],
            Some(("u", "p")),
            "rejected the username and password",
        ),
        (
            vec![5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0],
            None,
            "connection not allowed by ruleset (reply 2)",
        ),
        (vec![5, 7], None, "did not offer"),
    ];
    for (answer, creds, text) in cases {
        let (port, _task) = scripted(1, answer).await;
        let mut proxy = Proxy::new(ProxyKind::Socks5, "127.0.0.1", port);
        if let Some((u, p)) = creds {
            proxy = proxy.with_credentials(u, p);
        }
        let err = proxy
            .open("127.0.0.1", 1, SECOND)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(text), "{err}");
    }
}

#[tokio::test]
async fn oversized_credentials_and_bad_targets_fail_before_connecting() {
    // A listener that is never accepted from: a connection would queue.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let long = "x".repeat(256);
    for (user, password, field) in [
        (long.as_str(), "p", "username"),
        ("u", long.as_str(), "password"),
        ("", "p", "username"),
    ] {
        let proxy =
            Proxy::new(ProxyKind::Socks5, "127.0.0.1", port).with_credentials(user, password);
        let err = proxy.open("127.0.0.1", 1, SECOND).await.unwrap_err();
        assert!(
            matches!(&err, Error::Proxy(e) if matches!(**e, ProxyError::CredentialTooLong { field: f, .. } if f == field)),
            "{err}"
        );
    }
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", port).with_credentials("a:b", "c");
    let err = proxy.open("127.0.0.1", 1, SECOND).await.unwrap_err();
    assert!(
        matches!(&err, Error::Proxy(e) if matches!(**e, ProxyError::InvalidCredentials { .. })),
        "{err}"
    );
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", port);
    for bad in [
        "a b",
        "h\r\nX: y",
        "",
        "a/b",
        "u@h",
        "[name]",
        "[::1",
        &"a".repeat(256),
    ] {
        let err = proxy.open(bad, 1, SECOND).await.unwrap_err();
        assert!(
            matches!(&err, Error::Proxy(e) if matches!(**e, ProxyError::InvalidTarget { .. })),
            "{bad:?}: {err}"
        );
    }
    let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(accepted.is_err(), "a connection was made");
}
