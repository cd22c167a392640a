use super::compress::{SPARE_COMPRESS, SPARE_DECOMPRESS};
use super::*;
use crate::error::{CapacityError, Error, ProtocolError};

fn server(config: &DeflateConfig, offer: &str) -> Option<(DeflateParams, String)> {
    config.negotiate_server([offer])
}

fn agreed(config: &DeflateConfig) -> DeflateParams {
    server(config, "permessage-deflate; client_max_window_bits")
        .unwrap()
        .0
}

#[test]
fn server_accepts_browser_offer_with_defaults() {
    let (params, response) = server(
        &DeflateConfig::default(),
        "permessage-deflate; client_max_window_bits",
    )
    .unwrap();
    // §7.1.2.1: the server may name its window unasked; §7.1.2.2: the
    // client's only because the offer has the parameter.
    assert_eq!(
        response,
        "permessage-deflate; server_max_window_bits=13; client_max_window_bits=13"
    );
    assert_eq!(params.server_max_window_bits, Some(13));
    assert_eq!(params.client_max_window_bits, Some(13));
}

#[test]
fn server_defaults_lower_larger_windows_and_keep_smaller_ones() {
    let config = DeflateConfig::default();
    // No client_max_window_bits in the offer: the server must not name it.
    let (params, response) = server(&config, "permessage-deflate").unwrap();
    assert_eq!(response, "permessage-deflate; server_max_window_bits=13");
    assert_eq!(params.client_max_window_bits, None);
    let (params, _) = server(
        &config,
        "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
    )
    .unwrap();
    assert_eq!(
        (params.server_max_window_bits, params.client_max_window_bits),
        (Some(13), Some(13))
    );
    let (params, _) = server(
        &config,
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
    )
    .unwrap();
    assert_eq!(
        (params.server_max_window_bits, params.client_max_window_bits),
        (Some(9), Some(10))
    );
    // Unlimited: 15 goes without saying.
    let unlimited = config
        .server_max_window_bits(Some(15))
        .client_max_window_bits(Some(15));
    let (_, response) = server(&unlimited, "permessage-deflate; client_max_window_bits").unwrap();
    assert_eq!(response, "permessage-deflate");
}

/// As a client, the defaults offer no window limits and take whatever a
/// server answers within RFC 7692, as Autobahn's client cases need.
#[test]
fn client_with_defaults_accepts_what_servers_answer() {
    let client = DeflateConfig::default();
    assert_eq!(client.offer(), "permessage-deflate; client_max_window_bits");
    let agreed = client.negotiate_client("permessage-deflate").unwrap();
    assert_eq!(
        (agreed.server_max_window_bits, agreed.client_max_window_bits),
        (None, None)
    );
    for (response, server, client_bits) in [
        (
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
            10,
            9,
        ),
        (
            "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
            15,
            15,
        ),
    ] {
        let agreed = client.negotiate_client(response).unwrap();
        assert_eq!(
            (agreed.server_max_window_bits, agreed.client_max_window_bits),
            (Some(server), Some(client_bits)),
            "{response}"
        );
    }
    // A client that asks for limits holds the server to them.
    let limited = client
        .server_max_window_bits(Some(12))
        .client_max_window_bits(Some(12));
    assert!(limited
        .negotiate_client("permessage-deflate; client_max_window_bits=15")
        .is_err());
    assert!(limited
        .negotiate_client("permessage-deflate; server_max_window_bits=13")
        .is_err());
}

#[test]
fn server_echoes_server_no_context_takeover_and_caps_windows() {
    let config = DeflateConfig::default().client_max_window_bits(Some(10));
    let (params, response) = server(
        &config,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=12",
    )
    .unwrap();
    assert!(params.server_no_context_takeover);
    assert_eq!(params.server_max_window_bits, Some(9));
    assert_eq!(params.client_max_window_bits, Some(10));
    assert_eq!(
        response,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"
    );
}

#[test]
fn server_does_not_name_client_window_the_client_did_not_offer() {
    let config = DeflateConfig::default()
        .server_max_window_bits(Some(15))
        .client_max_window_bits(Some(10));
    let (params, response) = server(&config, "permessage-deflate").unwrap();
    assert_eq!(params.client_max_window_bits, None);
    assert_eq!(response, "permessage-deflate");
}

#[test]
fn server_declines_invalid_offers_and_takes_the_next() {
    for bad in [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; unknown_parameter",
        "x-webkit-deflate-frame",
    ] {
        assert_eq!(server(&DeflateConfig::default(), bad), None, "{bad}");
        let two = format!("{bad}, permessage-deflate; client_no_context_takeover");
        let (params, _) = server(&DeflateConfig::default(), &two).expect(&two);
        assert!(!params.server_no_context_takeover, "{two}");
    }
}

#[test]
fn server_accepts_the_clients_client_no_context_takeover() {
    let (params, response) = server(
        &DeflateConfig::default(),
        "permessage-deflate; client_no_context_takeover; client_max_window_bits",
    )
    .unwrap();
    assert!(params.client_no_context_takeover);
    assert!(!params.server_no_context_takeover);
    assert_eq!(
        response,
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=13; client_max_window_bits=13"
    );
    // And our client, which offered it, takes the echo.
    let client = DeflateConfig::default().client_no_context_takeover(true);
    let agreed = client.negotiate_client(&response).unwrap();
    assert!(agreed.client_no_context_takeover);
}

#[test]
fn server_reads_offers_across_several_headers() {
    let config = DeflateConfig::default();
    let got = config.negotiate_server(["foo", "permessage-deflate; server_max_window_bits=12"]);
    assert_eq!(got.unwrap().0.server_max_window_bits, Some(12));
}

#[test]
fn client_offer_round_trips_through_server() {
    let client = DeflateConfig::default()
        .server_no_context_takeover(true)
        .server_max_window_bits(Some(11))
        .client_max_window_bits(Some(12));
    let (server_params, response) = server(&DeflateConfig::default(), &client.offer()).unwrap();
    let client_params = client.negotiate_client(&response).unwrap();
    assert!(server_params.server_no_context_takeover && client_params.server_no_context_takeover);
    assert_eq!(client_params.server_max_window_bits, Some(11));
    assert_eq!(client_params.client_max_window_bits, Some(12));
}

#[test]
fn client_fails_on_responses_that_break_its_offer() {
    let client = DeflateConfig::default()
        .server_no_context_takeover(true)
        .server_max_window_bits(Some(10))
        .client_max_window_bits(Some(10));
    for bad in [
        // dropped server_no_context_takeover
        "permessage-deflate",
        // windows larger than offered
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=11",
        // no value in a response
        "permessage-deflate; server_no_context_takeover; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; bogus",
        "permessage-deflate; server_no_context_takeover, permessage-deflate",
        "other-extension",
    ] {
        assert!(client.negotiate_client(bad).is_err(), "{bad}");
    }
    assert!(client
        .negotiate_client(
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"
        )
        .is_ok());
}

fn roundtrip(params: &DeflateParams, messages: &[Vec<u8>]) {
    let mut sender = Deflate::new(params, true);
    let mut receiver = Deflate::new(params, false);
    for m in messages {
        let compressed = sender.compress(m).unwrap();
        // Split the compressed payload as fragments would.
        let mut out = Vec::new();
        let mid = compressed.len() / 2;
        receiver
            .decompress(&compressed[..mid], false, &mut out, 1 << 30)
            .unwrap();
        receiver
            .decompress(&compressed[mid..], true, &mut out, 1 << 30)
            .unwrap();
        assert_eq!(&out, m);
    }
}

#[test]
fn compresses_and_inflates_with_every_window_and_takeover_setting() {
    let text: Vec<u8> =
        br#"{"user":"alice","action":"post","text":"hello hello hello"}"#.repeat(50);
    let messages = vec![
        text.clone(),
        text.clone(),
        b"short".to_vec(),
        Vec::new(),
        text,
    ];
    for bits in [None, Some(8), Some(9), Some(12), Some(15)] {
        for takeover in [false, true] {
            let params = DeflateParams {
                server_no_context_takeover: takeover,
                client_no_context_takeover: takeover,
                server_max_window_bits: bits,
                client_max_window_bits: bits,
                level: 6,
                min_size: 0,
            };
            roundtrip(&params, &messages);
        }
    }
}

/// Regression: an empty message right after another compressed to nothing,
/// and the receiver's appended tail then corrupted the stream.
#[test]
fn empty_message_after_another_keeps_the_stream_in_step() {
    let params = agreed(&DeflateConfig::default());
    roundtrip(
        &params,
        &[b"first message".to_vec(), Vec::new(), b"third".to_vec()],
    );
}

#[test]
fn context_takeover_makes_repeated_messages_smaller() {
    let mut deflate = Deflate::new(&agreed(&DeflateConfig::default()), true);
    let message = b"the quick brown fox jumps over the lazy dog, again and again".repeat(4);
    let first = deflate.compress(&message).unwrap().len();
    let second = deflate.compress(&message).unwrap().len();
    assert!(second < first / 2, "{second} vs {first}");
}

pub(crate) fn params_with(takeover: bool, bits: Option<u8>) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: !takeover,
        client_no_context_takeover: !takeover,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
        level: 6,
        min_size: 0,
    }
}

#[test]
fn nothing_is_allocated_until_a_message_needs_it() {
    let mut deflate = Deflate::new(&params_with(true, None), true);
    assert!(deflate.compress.is_none() && deflate.decompress.is_none());
    // An empty message is a fixed stored block: still nothing.
    assert_eq!(&deflate.compress(b"").unwrap()[..], &[0x00]);
    assert!(deflate.compress.is_none());
    let compressed = deflate.compress(&b"hello, hello, hello".repeat(8)).unwrap();
    assert!(deflate.compress.is_some() && deflate.decompress.is_none());
    let mut receiver = Deflate::new(&params_with(true, None), false);
    let mut out = Vec::new();
    receiver
        .decompress(&compressed, true, &mut out, 1 << 20)
        .unwrap();
    assert!(receiver.decompress.is_some() && receiver.compress.is_none());
}

/// Without context takeover nothing of a message is needed for the next
/// (RFC 7692 §7.1.1), so neither side keeps its state between messages;
/// with it, both must.
#[test]
fn state_is_dropped_between_messages_only_without_context_takeover() {
    let message = br#"{"user":"alice","text":"hello hello hello"}"#.repeat(20);
    for bits in [None, Some(8), Some(10)] {
        for takeover in [true, false] {
            let params = params_with(takeover, bits);
            let mut sender = Deflate::new(&params, true);
            let mut receiver = Deflate::new(&params, false);
            for _ in 0..3 {
                let compressed = sender.compress(&message).unwrap();
                assert_eq!(sender.compress.is_some(), takeover, "{bits:?} {takeover}");
                let mut out = Vec::new();
                let mid = compressed.len() / 2;
                receiver
                    .decompress(&compressed[..mid], false, &mut out, 1 << 20)
                    .unwrap();
                // Mid-message the state is needed whatever was agreed.
                assert!(receiver.decompress.is_some());
                receiver
                    .decompress(&compressed[mid..], true, &mut out, 1 << 20)
                    .unwrap();
                assert_eq!(
                    receiver.decompress.is_some(),
                    takeover,
                    "{bits:?} {takeover}"
                );
                assert_eq!(out, message);
            }
        }
    }
}

/// Connections without context takeover share one reset compressor and
/// one reset decompressor per thread; they never go to a connection with
/// context takeover, nor to one with another window or level.
#[test]
fn one_spare_compressor_per_thread_for_connections_without_takeover() {
    // A thread of its own: its spare starts empty.
    std::thread::spawn(|| {
        let spare = || SPARE_COMPRESS.with(|s| s.borrow().as_ref().map(|(key, _)| *key));
        let spare_decompress =
            || SPARE_DECOMPRESS.with(|s| s.borrow().as_ref().map(|(key, _)| *key));
        let message = b"the quick brown fox jumps over the lazy dog, again and again".repeat(4);
        let params = params_with(false, None);
        let (mut a, mut b) = (Deflate::new(&params, true), Deflate::new(&params, true));
        assert_eq!(spare(), None);
        let first = a.compress(&message).unwrap();
        assert_eq!(spare(), Some((6, 15)));
        // b takes a's compressor, reset: the same bytes as a fresh one.
        let second = b.compress(&message).unwrap();
        assert_eq!(first, second);
        assert_eq!(spare(), Some((6, 15)));
        let mut takeover = Deflate::new(&params_with(true, None), true);
        takeover.compress(&message).unwrap();
        takeover.compress(&message).unwrap();
        assert!(takeover.compress.is_some());
        assert_eq!(spare(), Some((6, 15)));
        let mut small = Deflate::new(&params_with(false, Some(10)), true);
        let third = small.compress(&message).unwrap();
        assert_eq!(spare(), Some((6, 10)));
        let mut receiver = Deflate::new(&params_with(false, Some(10)), false);
        let mut out = Vec::new();
        assert_eq!(spare_decompress(), None);
        receiver
            .decompress(&third, true, &mut out, 1 << 20)
            .unwrap();
        assert_eq!(out, message);
        assert!(receiver.decompress.is_none());
        assert_eq!(spare_decompress(), Some((0, 10)));
        // Another connection's receiver takes it, reset.
        let mut other = Deflate::new(&params_with(false, Some(10)), false);
        out.clear();
        other.decompress(&third, true, &mut out, 1 << 20).unwrap();
        assert_eq!(out, message);
        assert_eq!(spare_decompress(), Some((0, 10)));
    })
    .join()
    .unwrap();
}

/// A message compressed after the compressor was dropped is the same as
/// one from a compressor that was reset: the first of a stream.
#[test]
fn without_context_takeover_every_message_compresses_alike() {
    let mut deflate = Deflate::new(&params_with(false, None), true);
    let message = b"the quick brown fox jumps over the lazy dog, again and again".repeat(4);
    let first = deflate.compress(&message).unwrap();
    let second = deflate.compress(&message).unwrap();
    assert_eq!(first, second);
}

#[test]
fn window_8_sends_stored_blocks_the_peer_can_inflate_with_a_256_byte_window() {
    let params = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: Some(8),
        client_max_window_bits: Some(8),
        level: 6,
        min_size: 0,
    };
    let mut sender = Deflate::new(&params, true);
    let message = b"abcdefgh".repeat(200);
    let compressed = sender.compress(&message).unwrap();
    assert!(compressed.len() >= message.len(), "stored, not compressed");
    let mut receiver = Deflate::new(&params, false);
    assert_eq!(receiver.decompress_window, 9);
    let mut out = Vec::new();
    receiver
        .decompress(&compressed, true, &mut out, 1 << 20)
        .unwrap();
    assert_eq!(out, message);
}

#[test]
fn deflate_bomb_stops_at_the_limit_plus_one_byte() {
    let params = agreed(&DeflateConfig::default());
    let mut sender = Deflate::new(&params, true);
    let bomb = sender.compress(&vec![0u8; 8 << 20]).unwrap();
    assert!(
        bomb.len() < 16 << 10,
        "8 MiB of zeros compress to {} bytes",
        bomb.len()
    );
    let mut receiver = Deflate::new(&params, false);
    let mut out = Vec::new();
    let limit = 100_000;
    let err = receiver
        .decompress(&bomb, true, &mut out, limit)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Capacity(CapacityError::MessageTooLarge { .. })
    ));
    assert!(out.capacity() <= limit + 1, "held {} bytes", out.capacity());
}

#[test]
fn corrupt_data_is_a_protocol_error() {
    let mut receiver = Deflate::new(&agreed(&DeflateConfig::default()), false);
    let err = receiver
        .decompress(&[0xFF, 0xFF, 0xFF, 0xFF], true, &mut Vec::new(), 1000)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Protocol(ProtocolError::InvalidCompressedData)
    ));
}
