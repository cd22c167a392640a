//! Micro-benchmarks of the sans-IO layers, with the peer crates' equivalent
//! operation in the same group where they expose one.
//!
//! ```text
//! cargo bench --bench codec                 # everything
//! cargo bench --bench codec -- mask         # one group
//! ```
//!
//! tokio-websockets exposes no codec or masking function, so it appears only in
//! the end-to-end echo benchmark (`benches/echo/`).

use std::hint::black_box;
use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use tokio_util::codec::{Decoder, Encoder};
use wscodec::frame::{FrameHeader, OpCode};
use wscodec::mask::apply_mask;
use wscodec::utf8::Utf8Validator;
use wscodec::{Message, MessageCodec, Role, Utf8Bytes};

const SIZES: [usize; 4] = [16, 1024, 16 * 1024, 1024 * 1024];

/// `count` frames of `len` bytes as `from` sends them.
fn wire(from: Role, opcode: OpCode, len: usize, fragments: usize) -> Vec<u8> {
    let mut codec = MessageCodec::new(from);
    codec.set_fragment_size(len.div_ceil(fragments.max(1)).max(1));
    let mut out = BytesMut::new();
    let message = match opcode {
        OpCode::Text => Message::text("a".repeat(len)),
        _ => Message::binary(vec![0xA5u8; len]),
    };
    codec.encode(&message, &mut out).unwrap();
    out.to_vec()
}

/// Messages per iteration, so that small sizes are not all loop overhead.
fn batch(len: usize) -> usize {
    (64 * 1024 / len).clamp(1, 1024)
}

fn header(c: &mut Criterion) {
    let mut group = c.benchmark_group("header");
    let masked = wire(Role::Client, OpCode::Binary, 1024, 1);
    group.bench_function("parse/wscodec", |b| {
        b.iter(|| FrameHeader::parse(black_box(&masked[..8])).unwrap())
    });
    group.bench_function("parse/tungstenite", |b| {
        use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader as THeader;
        b.iter(|| THeader::parse(&mut Cursor::new(black_box(&masked[..8]))).unwrap())
    });
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Binary,
        mask: Some([1, 2, 3, 4]),
        payload_len: 70_000,
    };
    group.bench_function("write/wscodec", |b| {
        let mut out = [0u8; 14];
        b.iter(|| black_box(&header).write(&mut out))
    });
    group.finish();
}

/// Decoding whole messages from an in-memory buffer: ours through
/// `MessageCodec`, tungstenite's through its `WebSocket` over a cursor.
fn decode(c: &mut Criterion, name: &str, from: Role, to: Role) {
    use tokio_tungstenite::tungstenite::protocol::{Role as TRole, WebSocket as TWebSocket};
    let mut group = c.benchmark_group(name);
    for len in SIZES {
        let n = batch(len);
        let one = wire(from, OpCode::Binary, len, 1);
        let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * n).collect();
        group.throughput(Throughput::Bytes((len * n) as u64));
        group.bench_with_input(BenchmarkId::new("wscodec", len), &many, |b, many| {
            b.iter_batched(
                || BytesMut::from(&many[..]),
                |mut buf| {
                    let mut codec = MessageCodec::new(to);
                    for _ in 0..n {
                        black_box(codec.decode(&mut buf).unwrap().unwrap());
                    }
                },
                BatchSize::LargeInput,
            )
        });
        let t_role = if to == Role::Server {
            TRole::Server
        } else {
            TRole::Client
        };
        group.bench_with_input(BenchmarkId::new("tungstenite", len), &many, |b, many| {
            b.iter_batched(
                || TWebSocket::from_raw_socket(Cursor::new(many.clone()), t_role, None),
                |mut ws| {
                    for _ in 0..n {
                        black_box(ws.read().unwrap());
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn decode_server(c: &mut Criterion) {
    decode(c, "decode_server_unmask", Role::Client, Role::Server);
}

fn decode_client(c: &mut Criterion) {
    decode(c, "decode_client", Role::Server, Role::Client);
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for len in SIZES {
        let n = batch(len);
        let message = Message::binary(vec![0xA5u8; len]);
        group.throughput(Throughput::Bytes((len * n) as u64));
        for role in [Role::Server, Role::Client] {
            let name = if role == Role::Server {
                "wscodec_server"
            } else {
                "wscodec_client_masked"
            };
            group.bench_with_input(BenchmarkId::new(name, len), &message, |b, message| {
                let mut codec = MessageCodec::new(role);
                let mut out = BytesMut::with_capacity((len + 14) * n);
                b.iter(|| {
                    out.clear();
                    for _ in 0..n {
                        codec.encode(message, &mut out).unwrap();
                    }
                    black_box(&out);
                })
            });
        }
    }
    group.finish();
}

/// Masking beside `memcpy` of the same size: the physical limit of a pass over
/// the bytes.
fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for len in [16 * 1024, 1024 * 1024] {
        group.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0x5Au8; len];
        let src = vec![0xA5u8; len];
        group.bench_function(BenchmarkId::new("wscodec", len), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), [1, 2, 3, 4], 0))
        });
        group.bench_function(BenchmarkId::new("fastwebsockets", len), |b| {
            b.iter(|| fastwebsockets::unmask(black_box(&mut buf), [1, 2, 3, 4]))
        });
        group.bench_function(BenchmarkId::new("memcpy", len), |b| {
            b.iter(|| buf.copy_from_slice(black_box(&src)))
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let text = "Hello, wörld! κόσμε — ".repeat(1024 * 1024 / 28);
    let bytes = text.as_bytes();
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("wscodec_whole", |b| {
        b.iter(|| {
            let mut v = Utf8Validator::new();
            v.feed(black_box(bytes)).unwrap();
            v.finish().unwrap();
        })
    });
    group.bench_function("wscodec_4k_chunks", |b| {
        b.iter(|| {
            let mut v = Utf8Validator::new();
            for chunk in black_box(bytes).chunks(4093) {
                v.feed(chunk).unwrap();
            }
            v.finish().unwrap();
        })
    });
    group.bench_function("std_from_utf8", |b| {
        b.iter(|| std::str::from_utf8(black_box(bytes)).unwrap())
    });
    group.finish();
}

fn reassembly(c: &mut Criterion) {
    let mut group = c.benchmark_group("reassembly");
    let len = 1024 * 1024;
    group.throughput(Throughput::Bytes(len as u64));
    for (name, opcode) in [("binary", OpCode::Binary), ("text", OpCode::Text)] {
        let frames = wire(Role::Client, opcode, len, 64);
        group.bench_function(BenchmarkId::new(name, "64x16KiB"), |b| {
            b.iter_batched(
                || BytesMut::from(&frames[..]),
                |mut buf| {
                    black_box(
                        MessageCodec::new(Role::Server)
                            .decode(&mut buf)
                            .unwrap()
                            .unwrap(),
                    )
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Why `Utf8Bytes::as_str` skips re-validation (its one `unsafe` block): the
/// checked alternative costs a pass over the text on every read.
fn text_as_str(c: &mut Criterion) {
    let mut group = c.benchmark_group("text_as_str");
    for len in [16, 16 * 1024] {
        let text = Utf8Bytes::try_from(Bytes::from("é".repeat(len / 2))).unwrap();
        group.bench_function(BenchmarkId::new("unchecked", len), |b| {
            b.iter(|| black_box(&text).as_str().len())
        });
        group.bench_function(BenchmarkId::new("checked", len), |b| {
            b.iter(|| {
                std::str::from_utf8(black_box(&text).as_bytes())
                    .unwrap()
                    .len()
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    header,
    decode_server,
    decode_client,
    encode,
    mask,
    utf8,
    reassembly,
    text_as_str
);
criterion_main!(benches);
