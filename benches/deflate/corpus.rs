//! A deterministic corpus of JSON messages like those a chat or event server
//! sends: objects with the same keys over and over, user names and ids from a
//! small population, timestamps, and free text from a word list. Sizes run
//! from about 200 bytes to 4 KiB (log-uniform), so most messages are small,
//! as in real traffic. Shared by the criterion benchmark (`benches/deflate.rs`)
//! and the memory tool (`benches/deflate/memory.rs`).
//!
//! Realism matters here because DEFLATE's ratio depends on repetition: a
//! repeated synthetic pattern compresses far better than real JSON, and the
//! gain from context takeover (previous messages as dictionary) comes from
//! keys and values recurring *across* messages.

use std::fmt::Write;

const WORDS: &[&str] = &[
    "the",
    "deploy",
    "is",
    "green",
    "again",
    "can",
    "you",
    "check",
    "logs",
    "for",
    "build",
    "failed",
    "on",
    "staging",
    "looks",
    "good",
    "to",
    "me",
    "merging",
    "now",
    "who",
    "owns",
    "this",
    "service",
    "latency",
    "spiked",
    "at",
    "noon",
    "rollback",
    "done",
    "thanks",
    "please",
    "review",
    "my",
    "pull",
    "request",
    "meeting",
    "moved",
    "tomorrow",
    "coffee",
    "lunch",
    "anyone",
    "seen",
    "error",
    "timeout",
    "database",
    "cache",
    "miss",
    "rate",
    "limit",
    "customer",
    "reported",
    "bug",
    "fixed",
    "in",
    "release",
    "notes",
    "updated",
    "ticket",
    "closed",
    "weekend",
    "on-call",
    "pager",
    "alert",
    "resolved",
    "dashboard",
    "metrics",
];
const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yolanda",
];
const ROOMS: &[&str] = &[
    "general",
    "random",
    "engineering",
    "ops",
    "support",
    "design",
];
const KINDS: &[&str] = &[
    "message", "edit", "reaction", "presence", "typing", "history",
];
const EMOJI: &[&str] = &[
    "thumbsup",
    "tada",
    "eyes",
    "rocket",
    "fire",
    "heart",
    "white_check_mark",
];

/// xorshift64*: small, fast, and the same sequence everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

/// One chat line of `words` words.
fn sentence(rng: &mut Rng, words: usize, out: &mut String) {
    for i in 0..words {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(rng.pick(WORDS));
    }
}

/// One `{"id":..,"user":{..},"text":..,"ts":..}` entry.
fn entry(rng: &mut Rng, id: u64, out: &mut String) {
    let user = rng.below(NAMES.len());
    let ts = 1_718_000_000_000u64 + id * 1_337 + rng.below(1000) as u64;
    let _ = write!(
        out,
        r#"{{"id":{id},"user":{{"id":{},"name":"{}","avatar":"https://cdn.example.com/avatars/{}.png"}},"ts":{ts},"text":""#,
        1000 + user,
        NAMES[user],
        NAMES[user],
    );
    let words = 3 + rng.below(18);
    sentence(rng, words, out);
    out.push('"');
    if rng.below(3) == 0 {
        let _ = write!(
            out,
            r#","reactions":[{{"emoji":"{}","count":{}}}]"#,
            rng.pick(EMOJI),
            1 + rng.below(9)
        );
    }
    out.push('}');
}

/// One message of about `target` bytes: an event with its entries.
pub fn message(rng: &mut Rng, seq: u64, target: usize) -> String {
    let mut out = String::with_capacity(target + 256);
    let kind = rng.pick(KINDS);
    let room = rng.pick(ROOMS);
    let _ = write!(
        out,
        r#"{{"type":"{kind}","seq":{seq},"room":"{room}","entries":["#
    );
    let mut id = seq * 100;
    loop {
        entry(rng, id, &mut out);
        id += 1;
        if out.len() + 2 >= target {
            break;
        }
        out.push(',');
    }
    out.push_str("]}");
    out
}

/// `count` messages, sizes log-uniform in 200..=4096 bytes, always the same.
pub fn corpus(count: usize) -> Vec<String> {
    let mut rng = Rng::new(0x5EED_CAFE);
    (0..count as u64)
        .map(|seq| {
            // log2(200) ≈ 7.64, log2(4096) = 12.
            let exp = 7.64 + (rng.next() % 10_000) as f64 / 10_000.0 * (12.0 - 7.64);
            let target = 2f64.powf(exp) as usize;
            message(&mut rng, seq, target)
        })
        .collect()
}
