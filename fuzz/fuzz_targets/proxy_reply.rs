//! The proxy reply parsers (src/proxy/): `parse_connect_reply` for an HTTP
//! proxy's answer to CONNECT and `parse_socks5_reply` for a SOCKS5 proxy's
//! answer, on arbitrary bytes.
//!
//! Checks: nothing panics; a complete reply never claims more bytes than the
//! input holds, and is the same reply when the bytes after it are cut off
//! (the tunnel's bytes never change the verdict); every shorter prefix of a
//! complete reply is "incomplete", and a SOCKS5 prefix asks for a length
//! that is more than it has and no more than the reply's, so reading
//! exactly that much never reads into the tunnel.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscodec::proxy::{parse_connect_reply, parse_socks5_reply, Socks5Parse};

/// The longest SOCKS5 reply: 4 + 1 + 255 + 2 bytes (a 255-byte name).
const SOCKS5_MAX: usize = 262;

fuzz_target!(|data: &[u8]| {
    // Byte 0: the header-line limit; the rest: the reply, raw, so seeds are
    // plain replies after one byte.
    let Some((&max_headers, reply)) = data.split_first() else {
        return;
    };
    let max_headers = usize::from(max_headers);

    match parse_connect_reply(reply, max_headers) {
        Ok(Some(parsed)) => {
            assert!(parsed.head_len <= reply.len());
            assert_eq!(
                parse_connect_reply(&reply[..parsed.head_len], max_headers),
                Ok(Some(parsed.clone()))
            );
            // Every prefix of a valid head is a partial one (at most a few
            // cuts, to keep each run linear).
            for cut in [0, 1, parsed.head_len / 2, parsed.head_len.saturating_sub(1)] {
                if cut < parsed.head_len {
                    assert_eq!(
                        parse_connect_reply(&reply[..cut], max_headers),
                        Ok(None),
                        "cut {cut}"
                    );
                }
            }
        }
        Ok(None) | Err(_) => {}
    }

    match parse_socks5_reply(reply) {
        Ok(Socks5Parse::Complete(parsed)) => {
            assert!(parsed.len <= reply.len() && parsed.len <= SOCKS5_MAX);
            assert_eq!(
                parse_socks5_reply(&reply[..parsed.len]),
                Ok(Socks5Parse::Complete(parsed.clone()))
            );
            for cut in 0..parsed.len {
                match parse_socks5_reply(&reply[..cut]) {
                    Ok(Socks5Parse::Incomplete { needed }) => {
                        assert!(cut < needed && needed <= parsed.len, "cut {cut}: {needed}")
                    }
                    other => panic!("cut {cut} of a complete reply: {other:?}"),
                }
            }
        }
        Ok(Socks5Parse::Incomplete { needed }) => {
            assert!(reply.len() < needed && needed <= SOCKS5_MAX);
        }
        Err(_) => {}
    }
});
