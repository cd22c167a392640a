//! permessage-deflate throughput and compression ratio on a JSON corpus
//! (64 chat/event messages of 200 B–4 KiB, `benches/deflate/corpus.rs`),
//! through the public API: `MessageCodec` with the parameters that
//! `DeflateConfig::negotiate_server` agrees to for a given offer.
//!
//! ```text
//! cargo bench --features deflate --bench deflate              # everything
//! cargo bench --features deflate --bench deflate -- encode    # one group
//! ```
//!
//! Groups, each with every setting beside the same messages uncompressed:
//! `encode` (server: compress + frame), `decode` (server: unmask + inflate +
//! UTF-8 check of the client's compressed frames), `echo` (both: what an echo
//! server does with one message). Throughput is payload (uncompressed) bytes.
//! The compression ratio of every setting is printed once, before the groups.
// The example's items are `pub` for this file, which includes it as a module.
#![allow(unreachable_pub)]

#[path = "deflate/corpus.rs"]
mod corpus;

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use tokio_util::codec::{Decoder, Encoder};
use wscodec::deflate::{DeflateConfig, DeflateParams};
use wscodec::{Message, MessageCodec, Role};

const MESSAGES: usize = 64;

/// A setting: its name, the client's offer (`None`: no compression), and our
/// compression level. The server has `DeflateConfig`'s defaults for
/// `browser_offer`, and no window limits of its own for the others, so that
/// the offer decides (`wN`: `max_window_bits=N` both ways).
struct Setting {
    name: &'static str,
    offer: Option<&'static str>,
    level: u32,
}

const fn setting(name: &'static str, offer: Option<&'static str>, level: u32) -> Setting {
    Setting { name, offer, level }
}

/// The server's configuration for a setting.
fn server_config(setting: &Setting) -> DeflateConfig {
    let config = DeflateConfig::default().level(setting.level);
    if setting.name == "browser_offer" {
        return config;
    }
    config
        .server_max_window_bits(Some(15))
        .client_max_window_bits(Some(15))
}

const W15: &str = "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15";
const W14: &str = "permessage-deflate; server_max_window_bits=14; client_max_window_bits=14";
const W13: &str = "permessage-deflate; server_max_window_bits=13; client_max_window_bits=13";
const W12: &str = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12";
const W9: &str = "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9";
const W15_NO_TAKEOVER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=15";
const W12_NO_TAKEOVER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12";

const SETTINGS: &[Setting] = &[
    setting("uncompressed", None, 6),
    // What browsers offer: the server's defaults decide.
    setting(
        "browser_offer",
        Some("permessage-deflate; client_max_window_bits"),
        6,
    ),
    setting("w15_takeover", Some(W15), 6),
    setting("w14_takeover", Some(W14), 6),
    setting("w13_takeover", Some(W13), 6),
    setting("w12_takeover", Some(W12), 6),
    setting("w9_takeover", Some(W9), 6),
    setting("w15_no_takeover", Some(W15_NO_TAKEOVER), 6),
    setting("w12_no_takeover", Some(W12_NO_TAKEOVER), 6),
    // Level 1 (zlib's fastest) beside the default 6.
    setting("w15_takeover_level1", Some(W15), 1),
    setting("w13_takeover_level1", Some(W13), 1),
];

fn params(setting: &Setting, offer: &str) -> DeflateParams {
    server_config(setting)
        .negotiate_server([offer])
        .expect("the server accepts the offer")
        .0
}

/// A codec for `role`, compressing as agreed for the setting's offer.
fn codec(role: Role, setting: &Setting) -> MessageCodec {
    let mut codec = MessageCodec::new(role);
    if let Some(offer) = setting.offer {
        codec.set_deflate(&params(setting, offer));
    }
    codec
}

fn messages() -> Vec<Message> {
    corpus::corpus(MESSAGES)
        .into_iter()
        .map(Message::text)
        .collect()
}

fn payload_bytes(messages: &[Message]) -> usize {
    messages.iter().map(Message::len).sum()
}

/// The bytes `role` puts on the wire for `messages`, from a fresh codec.
fn wire(role: Role, setting: &Setting, messages: &[Message]) -> BytesMut {
    let mut codec = codec(role, setting);
    let mut out = BytesMut::new();
    for m in messages {
        codec.encode(m, &mut out).unwrap();
    }
    out
}

/// Wire bytes over payload bytes, frame headers included, for every setting.
fn print_ratios(messages: &[Message]) {
    let payload = payload_bytes(messages);
    eprintln!(
        "\ncorpus: {} messages, {payload} payload bytes; wire bytes / payload bytes as the server sends them:",
        messages.len()
    );
    for setting in SETTINGS {
        let bytes = wire(Role::Server, setting, messages).len();
        let response = setting
            .offer
            .map(|o| server_config(setting).negotiate_server([o]).unwrap().1)
            .unwrap_or_else(|| "-".into());
        eprintln!(
            "  {:<20} {bytes:>7} bytes  ratio {:.3}  (response: {response})",
            setting.name,
            bytes as f64 / payload as f64
        );
    }
    eprintln!();
}

fn encode(c: &mut Criterion) {
    let messages = messages();
    print_ratios(&messages);
    let mut group = c.benchmark_group("deflate_encode");
    group.throughput(Throughput::Bytes(payload_bytes(&messages) as u64));
    for setting in SETTINGS {
        group.bench_function(BenchmarkId::from_parameter(setting.name), |b| {
            // One codec for the whole run: with context takeover, each pass
            // continues the same stream, as a long-lived connection would.
            let mut codec = codec(Role::Server, setting);
            let mut out = BytesMut::with_capacity(256 * 1024);
            b.iter(|| {
                out.clear();
                for m in &messages {
                    codec.encode(m, &mut out).unwrap();
                }
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let messages = messages();
    let mut group = c.benchmark_group("deflate_decode");
    group.throughput(Throughput::Bytes(payload_bytes(&messages) as u64));
    for setting in SETTINGS {
        // The client's masked, compressed frames; with context takeover they
        // decode only in order, from a fresh decompressor.
        let input = wire(Role::Client, setting, &messages);
        group.bench_function(BenchmarkId::from_parameter(setting.name), |b| {
            b.iter_batched(
                || (codec(Role::Server, setting), input.clone()),
                |(mut codec, mut buf)| {
                    for _ in 0..messages.len() {
                        black_box(codec.decode(&mut buf).unwrap().unwrap());
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// What an echo server does per message: decode the client's frame, encode
/// the message back.
fn echo(c: &mut Criterion) {
    let messages = messages();
    let mut group = c.benchmark_group("deflate_echo");
    group.throughput(Throughput::Bytes(payload_bytes(&messages) as u64));
    for setting in SETTINGS {
        let input = wire(Role::Client, setting, &messages);
        group.bench_function(BenchmarkId::from_parameter(setting.name), |b| {
            let mut out = BytesMut::with_capacity(256 * 1024);
            b.iter_batched(
                || (codec(Role::Server, setting), input.clone()),
                |(mut codec, mut buf)| {
                    out.clear();
                    for _ in 0..messages.len() {
                        let m = codec.decode(&mut buf).unwrap().unwrap();
                        codec.encode(m, &mut out).unwrap();
                    }
                    black_box(&out);
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = encode, decode, echo
}
criterion_main!(benches);
