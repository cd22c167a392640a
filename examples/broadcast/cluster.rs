//! The cluster: rooms shared by several nodes through one Redis (`--redis`).
//!
//! This module owns everything a node does with Redis: it publishes every
//! change of a room (a chat line, a join, a leave, a rename) through one Lua
//! script ([`cluster.lua`](cluster.lua)) that numbers it in the room's
//! sequence, appends it to the room's capped stream and publishes it on the
//! room's channel, all at once; and it delivers to its own members only what
//! comes back from Redis, its own changes included. So every member of a room,
//! on any node, sees the same sequence. It never touches a socket: like the
//! [`Hub`](super::hub::Hub) it fills the members' bounded queues with
//! `try_send` and cancels the tokens of the slow. Only a replay from a room's
//! stream (a gap, or the catch-up after a lost subscription) waits for room
//! in them, for up to [`CATCH_UP_GRACE`]: a backlog can be longer than a
//! queue without its members being slow.
//!
//! Three tasks per node:
//! - the **publisher** runs the outbox, one call at a time and in order, and
//!   retries a call until Redis answers it. Each call carries this instance's
//!   next publish number, which the script records per room and refuses to
//!   run twice: a retried call whose first try did run is not published again;
//! - the **dispatcher** owns the rooms' local state: their members, the next
//!   sequence number each room expects, the epoch, the recent history. It
//!   drops duplicates, fills gaps from the stream (`XRANGE`), tells members
//!   when history was lost (a new epoch, or a stream trimmed past what it
//!   needs), subscribes a room's channel while the room has members here, and
//!   after any loss of the subscription resubscribes and catches every room
//!   up. A probe published to this node's own channel must come back within
//!   [`Options::probe_timeout`](super::Options::probe_timeout), or the
//!   subscription is taken for dead and made again;
//! - the **heartbeat** keeps this node's liveness key alive (it expires after
//!   [`Options::presence_ttl`](super::Options::presence_ttl)); the script
//!   announces as left the members of a node whose key expired.
//!
//! # Redis keys (room `R`, this node's instance `I`)
//!
//! | key | type | holds |
//! |---|---|---|
//! | `bc:{R}:seq` | string | the last sequence number |
//! | `bc:{R}:epoch` | string | the epoch: new whenever the sequence starts over |
//! | `bc:{R}:log` | stream | the last [`HISTORY`] envelopes, entry id `SEQ-0` |
//! | `bc:{R}:who` | sorted set | members (`I/ID`), scored by their join's number |
//! | `bc:{R}:names` | hash | member → name |
//! | `bc:{R}:pub` | hash | instance → the last publish number it ran |
//! | `bc:alive:I` | string with expiry | that the node is alive |
//! | channel `bc:{R}` | | the room's envelopes |
//! | channel `bc:node:I` | | this node's liveness probes |
//!
//! An envelope is `EPOCH SEQ KIND MEMBER BODY`: kind `t` (text: the JSON the
//! members get), `b` (binary, as sent), `j`, `l`, `r` (join, leave, rename:
//! JSON).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use redis::streams::StreamRangeReply;
use redis::{ErrorKind, RedisError, Script, ServerErrorKind, Value};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use wscodec::{Message, PreparedMessage};

use super::session::Link;
use super::text::{now_millis, push_json_string};
use super::Options;

/// Envelopes kept per room in Redis (`XADD ... MAXLEN ~`): how far a node can
/// fall behind (a killed subscription, a slow reconnect) and still catch up.
pub(crate) const HISTORY: usize = 10_000;
/// Envelopes each node keeps per room, to give a member that joined while
/// the dispatcher was already past its join what it missed since.
const RECENT: usize = 1024;
/// Envelopes held for a room between its subscription and its first join's
/// answer; older ones are not needed by anyone (they precede the join).
const EARLY: usize = 4096;
/// How long one Redis call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the dispatcher looks at its probe and reconnects a lost
/// subscription.
const TICK: Duration = Duration::from_millis(250);
/// How long a replay from a room's stream (a gap, a catch-up after a lost
/// subscription) waits for members' queues to make room before it drops the
/// ones still full as too slow. A replay can be longer than a queue, and a
/// member that reads is not slow for having been sent a backlog at once.
/// Kept well under the probe timeout: the dispatcher answers nothing else
/// while it waits.
const CATCH_UP_GRACE: Duration = Duration::from_secs(1);

const LUA: &str = include_str!("cluster.lua");

/// What went on in the cluster, for tests and logs.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Envelopes delivered from a room's stream (gaps and catch-ups) rather
    /// than from its channel.
    pub from_history: AtomicU64,
    /// Envelopes dropped as already delivered.
    pub duplicates: AtomicU64,
    /// Resync notices: history lost (a new epoch, or trimmed).
    pub resyncs: AtomicU64,
    /// Subscriptions made again after one was lost or found dead.
    pub resubscribes: AtomicU64,
    /// Chat lines refused (Redis down or the outbox full).
    pub refused: AtomicU64,
    /// Calls to Redis tried again after a failure.
    pub retries: AtomicU64,
}

/// A member as the dispatcher holds it.
pub(crate) struct Member {
    name: String,
    /// How it came, for its welcome.
    link: Link,
    queue: mpsc::Sender<PreparedMessage>,
    /// Cancelled when the member is dropped for being too slow.
    dropped: CancellationToken,
}

/// Why a chat line was not taken.
#[derive(Debug)]
pub(crate) struct Refused;

/// This node's handle on the cluster; what the sessions call.
pub(crate) struct Cluster {
    instance: String,
    events: mpsc::UnboundedSender<Event>,
    outbox: Arc<Outbox>,
    next_id: AtomicU64,
    alive_key: String,
    conn: ConnectionManager,
    stats: Arc<ClusterStats>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// The cluster's tasks; dropping this stops them (an aborted node).
pub(crate) type Tasks = JoinSet<()>;

impl Cluster {
    /// Connects to `url` and starts this node's tasks.
    pub(crate) async fn start(
        url: &str,
        options: &Options,
        stats: Arc<ClusterStats>,
    ) -> Result<(Arc<Cluster>, Tasks), RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT));
        let conn = timeout(
            CALL_TIMEOUT * 2,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        let node = options
            .node_id
            .clone()
            .unwrap_or_else(|| format!("{:08x}", rand::random::<u32>()));
        // A new incarnation per start: a node restarted under the same id
        // must not have its first publish numbers taken for retries, nor
        // its old members for live ones.
        let instance = format!("{node}.{:08x}", rand::random::<u32>());
        let alive_key = format!("bc:alive:{instance}");
        let ttl = options.presence_ttl;
        let mut heartbeat_conn = conn.clone();
        let _: () = redis::cmd("SET")
            .arg(&alive_key)
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut heartbeat_conn)
            .await?;

        let (events, events_rx) = mpsc::unbounded_channel();
        let outbox = Arc::new(Outbox {
            state: Mutex::new(OutboxState::default()),
            notify: Notify::new(),
            capacity: options.outbox_capacity,
            down: AtomicBool::new(false),
        });
        let cluster = Arc::new(Cluster {
            instance: instance.clone(),
            events: events.clone(),
            outbox: outbox.clone(),
            next_id: AtomicU64::new(0),
            alive_key: alive_key.clone(),
            conn: conn.clone(),
            stats: stats.clone(),
        });
        tracing::info!(%instance, "cluster node up");

        let mut tasks = JoinSet::new();
        tasks.spawn(publish(
            outbox.clone(),
            conn.clone(),
            instance.clone(),
            events.clone(),
            stats.clone(),
        ));
        let dispatcher = Dispatcher {
            instance: instance.clone(),
            client,
            conn: conn.clone(),
            events: events.clone(),
            sink: None,
            generation: 0,
            reader: None,
            rooms: HashMap::new(),
            outbox: outbox.clone(),
            stats,
            probe: None,
            probe_timeout: options.probe_timeout,
            reap_every: ttl / 3,
            last_reap: Instant::now(),
        };
        tasks.spawn(dispatcher.run(events_rx));
        tasks.spawn(heartbeat(heartbeat_conn, alive_key, ttl, outbox));
        Ok((cluster, tasks))
    }

    fn member(&self, id: u64) -> String {
        format!("{}/{id}", self.instance)
    }

    /// Adds a member to `room`: it gets its welcome, listing the room's
    /// members on every node, once its join has come back from Redis.
    pub(crate) fn enter(
        &self,
        room: &str,
        name: &str,
        link: Link,
        queue: mpsc::Sender<PreparedMessage>,
        dropped: CancellationToken,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let member = Member {
            name: name.to_owned(),
            link,
            queue,
            dropped,
        };
        let _ = self.events.send(Event::Enter {
            room: room.to_owned(),
            id,
            member,
        });
        id
    }

    /// Removes a member, telling the room on every node.
    pub(crate) fn leave(&self, room: &str, id: u64) {
        let _ = self.events.send(Event::Left {
            room: room.to_owned(),
            id,
        });
    }

    /// Publishes a chat line (text: the JSON the members get) or a binary
    /// message. `Err` when Redis is unreachable or the outbox is full: the
    /// message is not sent, and the caller tells its sender.
    pub(crate) fn send(&self, room: &str, id: u64, message: &Message) -> Result<(), Refused> {
        let (kind, body) = match message {
            Message::Text(text) => (b't', Bytes::copy_from_slice(text.as_bytes())),
            Message::Binary(data) => (b'b', data.clone()),
            _ => return Ok(()),
        };
        let op = Op::Data {
            kind,
            member: self.member(id),
            body,
        };
        let pushed = self.outbox.push(room, op, true);
        if pushed.is_err() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
        pushed
    }

    /// Renames a member and tells everyone, the member included.
    pub(crate) fn rename(&self, room: &str, id: u64, from: &str, name: &str) {
        if from == name {
            return;
        }
        let mut json = String::from(r#"{"type":"rename","from":"#);
        push_json_string(&mut json, from);
        json.push_str(r#","name":"#);
        push_json_string(&mut json, name);
        let _ = write!(json, r#","time":{}}}"#, now_millis());
        let op = Op::Rename {
            member: self.member(id),
            name: name.to_owned(),
            body: json,
        };
        let _ = self.outbox.push(room, op, false);
    }

    /// After the last session ended: publishes what is still in the outbox
    /// (the leaves of a graceful stop), for at most `grace`, then removes this
    /// node's liveness key and stops its tasks.
    pub(crate) async fn close(&self, tasks: Tasks, grace: Duration) {
        let (done, flushed) = oneshot::channel();
        let _ = self.events.send(Event::Flush(done));
        let drained = async {
            let _ = flushed.await;
            while !self.outbox.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if timeout(grace, drained).await.is_err() {
            tracing::warn!("cluster: Redis did not take the last changes in time");
        }
        let mut conn = self.conn.clone();
        let mut deleted = redis::cmd("DEL");
        deleted.arg(&self.alive_key);
        let deleted = deleted.query_async::<()>(&mut conn);
        let _ = timeout(CALL_TIMEOUT, deleted).await;
        drop(tasks);
    }
}

/// What one call of the script changes.
#[derive(Clone)]
enum Op {
    /// A chat line (`t`) or a binary message (`b`).
    Data {
        kind: u8,
        member: String,
        body: Bytes,
    },
    Join {
        id: u64,
        member: String,
        name: String,
    },
    Leave {
        member: String,
        name: String,
        reason: Option<&'static str>,
    },
    Rename {
        member: String,
        name: String,
        body: String,
    },
    /// Announce the members of dead nodes as left.
    Reap,
}

#[derive(Clone)]
struct Call {
    room: String,
    number: u64,
    op: Op,
}

/// The calls waiting for Redis, in order.
struct Outbox {
    state: Mutex<OutboxState>,
    notify: Notify,
    /// Chat lines at most; presence changes are never refused.
    capacity: usize,
    /// The last call failed: new chat lines are refused until one succeeds.
    down: AtomicBool,
}

#[derive(Default)]
struct OutboxState {
    calls: VecDeque<Call>,
    next_number: u64,
    chat_lines: usize,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, OutboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, room: &str, op: Op, refusable: bool) -> Result<(), Refused> {
        let mut state = self.lock();
        if refusable {
            if self.down.load(Ordering::Relaxed) || state.chat_lines >= self.capacity {
                return Err(Refused);
            }
            state.chat_lines += 1;
        }
        state.next_number += 1;
        let call = Call {
            room: room.to_owned(),
            number: state.next_number,
            op,
        };
        state.calls.push_back(call);
        drop(state);
        self.notify.notify_one();
        Ok(())
    }

    fn front(&self) -> Option<Call> {
        self.lock().calls.front().cloned()
    }

    fn pop(&self) {
        let mut state = self.lock();
        if let Some(call) = state.calls.pop_front() {
            if matches!(call.op, Op::Data { .. }) {
                state.chat_lines -= 1;
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.lock().calls.is_empty()
    }
}

fn room_key(room: &str, what: &str) -> String {
    format!("bc:{{{room}}}:{what}")
}

fn room_channel(room: &str) -> String {
    format!("bc:{{{room}}}")
}

/// Runs the outbox's calls, in order, each until Redis answers it.
async fn publish(
    outbox: Arc<Outbox>,
    mut conn: ConnectionManager,
    instance: String,
    events: mpsc::UnboundedSender<Event>,
    stats: Arc<ClusterStats>,
) {
    let script = Script::new(LUA);
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(call) = outbox.front() else {
            outbox.notify.notified().await;
            continue;
        };
        let mut invocation = script.prepare_invoke();
        for key in ["seq", "epoch", "log", "who", "names", "pub"] {
            invocation.key(room_key(&call.room, key));
        }
        let (what, member, a, b, name): (&str, &str, Bytes, String, &str) = match &call.op {
            Op::Data { kind, member, body } => {
                let what = if *kind == b't' { "t" } else { "b" };
                (what, member, body.clone(), String::new(), "")
            }
            Op::Join { member, name, .. } => {
                let mut head = String::from(r#"{"type":"join","name":"#);
                push_json_string(&mut head, name);
                head.push_str(r#","members":"#);
                let tail = format!(r#","time":{}}}"#, now_millis());
                ("j", member, Bytes::from(head), tail, name)
            }
            Op::Leave {
                member,
                name,
                reason,
            } => {
                let mut head = String::from(r#"{"type":"leave","name":"#);
                push_json_string(&mut head, name);
                head.push_str(r#","members":"#);
                let mut tail = String::new();
                if let Some(reason) = reason {
                    tail.push_str(r#","reason":"#);
                    push_json_string(&mut tail, reason);
                }
                let _ = write!(tail, r#","time":{}}}"#, now_millis());
                ("l", member, Bytes::from(head), tail, "")
            }
            Op::Rename { member, name, body } => {
                ("r", member, Bytes::from(body.clone()), String::new(), name)
            }
            Op::Reap => ("x", "-", Bytes::new(), String::new(), ""),
        };
        invocation
            .arg(&instance)
            .arg(call.number)
            .arg(what)
            .arg(member)
            .arg(&a[..])
            .arg(&b)
            .arg(format!("{:016x}", rand::random::<u64>()))
            .arg(HISTORY)
            .arg(room_channel(&call.room))
            .arg("bc:alive:")
            .arg(now_millis() as u64)
            .arg(name);
        let result = timeout(
            CALL_TIMEOUT,
            invocation.invoke_async::<Vec<Value>>(&mut conn),
        )
        .await;
        match result {
            Ok(Ok(reply)) => {
                outbox.pop();
                outbox.down.store(false, Ordering::Relaxed);
                backoff = Duration::from_millis(50);
                if let Op::Join { id, .. } = call.op {
                    if let Some((seq, epoch, names)) = parse_join_reply(reply) {
                        let _ = events.send(Event::Joined {
                            room: call.room,
                            id,
                            seq,
                            epoch,
                            names,
                        });
                    }
                }
            }
            Ok(Err(e)) if e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError) => {
                // The script itself failed: trying again would fail again.
                tracing::warn!(room = %call.room, error = %e, "cluster: call dropped");
                outbox.pop();
            }
            failed => {
                if !outbox.down.swap(true, Ordering::Relaxed) {
                    match failed {
                        Ok(Err(e)) => tracing::warn!(error = %e, "cluster: Redis unavailable"),
                        _ => tracing::warn!("cluster: Redis did not answer in time"),
                    }
                }
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn parse_join_reply(reply: Vec<Value>) -> Option<(u64, String, Vec<String>)> {
    let mut values = reply.into_iter();
    let _ran = values.next()?;
    let seq: u64 = redis::from_redis_value(values.next()?).ok()?;
    let epoch: String = redis::from_redis_value(values.next()?).ok()?;
    let names = values
        .filter_map(|v| redis::from_redis_value::<String>(v).ok())
        .collect();
    Some((seq, epoch, names))
}

/// Keeps this node's liveness key alive.
async fn heartbeat(mut conn: ConnectionManager, key: String, ttl: Duration, outbox: Arc<Outbox>) {
    // A third of the expiry, so that two lost refreshes do not kill the
    // node; at least every second, so that an outage's end is seen soon.
    let mut every = tokio::time::interval((ttl / 3).min(Duration::from_secs(1)));
    loop {
        every.tick().await;
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(1).arg("PX").arg(ttl.as_millis() as u64);
        let set = set.query_async::<()>(&mut conn);
        match timeout(CALL_TIMEOUT, set).await {
            // Its answer is what lets chat lines in again after an outage
            // when no other call is waiting.
            Ok(Ok(())) => outbox.down.store(false, Ordering::Relaxed),
            _ => outbox.down.store(true, Ordering::Relaxed),
        }
    }
}

/// What the dispatcher is told.
enum Event {
    Enter {
        room: String,
        id: u64,
        member: Member,
    },
    Left {
        room: String,
        id: u64,
    },
    /// A join ran: its number, the epoch, and the room's members then.
    Joined {
        room: String,
        id: u64,
        seq: u64,
        epoch: String,
        names: Vec<String>,
    },
    /// From subscription `generation`.
    Message {
        generation: u64,
        channel: String,
        payload: Vec<u8>,
    },
    SubscriberLost {
        generation: u64,
    },
    /// Answered once every event before it is handled.
    Flush(oneshot::Sender<()>),
}

/// One envelope, parsed.
struct Envelope {
    epoch: String,
    seq: u64,
    kind: u8,
    body: Bytes,
}

fn parse_envelope(payload: &[u8]) -> Option<Envelope> {
    let mut parts = payload.splitn(5, |&b| b == b' ');
    let epoch = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let seq = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let kind = *parts.next()?.first()?;
    let _member = parts.next()?;
    let body = Bytes::copy_from_slice(parts.next()?);
    Some(Envelope {
        epoch,
        seq,
        kind,
        body,
    })
}

/// A member between its arrival and its welcome.
struct Pending {
    member: Member,
    /// Its join's number and epoch, and the welcome, once the script answered.
    joined: Option<(u64, String, PreparedMessage)>,
}

#[derive(Default)]
struct RoomState {
    /// By id, which is the order of joining on this node.
    members: BTreeMap<u64, Member>,
    pending: BTreeMap<u64, Pending>,
    /// The next sequence number to deliver, and its epoch; `None` until the
    /// first join's answer says where this node comes in.
    next: Option<(u64, String)>,
    /// What arrived before `next` was known.
    early: VecDeque<Envelope>,
    /// The last envelopes delivered, by number.
    recent: VecDeque<(u64, PreparedMessage)>,
}

struct Dispatcher {
    instance: String,
    client: redis::Client,
    conn: ConnectionManager,
    events: mpsc::UnboundedSender<Event>,
    sink: Option<PubSubSink>,
    /// Of the current subscription: messages of an older one are stale.
    generation: u64,
    reader: Option<tokio::task::AbortHandle>,
    rooms: HashMap<String, RoomState>,
    outbox: Arc<Outbox>,
    stats: Arc<ClusterStats>,
    /// The probe in flight: its number and when it went out.
    probe: Option<(u64, Instant)>,
    probe_timeout: Duration,
    reap_every: Duration,
    last_reap: Instant,
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        // The reader is a task of its own: it goes with its dispatcher (an
        // aborted node's subscription must end as a killed process's would).
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

impl Dispatcher {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.resubscribe().await;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.handle(event).await,
                    None => return,
                },
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::Enter { room, id, member } => {
                let fresh = !self.rooms.contains_key(&room);
                let name = member.name.clone();
                self.rooms.entry(room.clone()).or_default().pending.insert(
                    id,
                    Pending {
                        member,
                        joined: None,
                    },
                );
                // Subscribed before the join runs, so that nothing published
                // after it is missed (and what is, the stream gives back).
                if fresh {
                    self.subscribe(&room).await;
                }
                let op = Op::Join {
                    id,
                    member: format!("{}/{id}", self.instance),
                    name,
                };
                let _ = self.outbox.push(&room, op, false);
            }
            Event::Left { room, id } => self.remove(&room, id, None).await,
            Event::Joined {
                room,
                id,
                seq,
                epoch,
                names,
            } => self.joined(&room, id, seq, epoch, names).await,
            Event::Message {
                generation,
                channel,
                payload,
            } => {
                if generation != self.generation {
                    return;
                }
                if let Some(probe) = channel.strip_prefix("bc:node:") {
                    let number = std::str::from_utf8(&payload)
                        .ok()
                        .and_then(|p| p.parse().ok());
                    if probe == self.instance && self.probe.is_some_and(|(n, _)| Some(n) == number)
                    {
                        self.probe = None;
                    }
                    return;
                }
                let Some(room) = channel
                    .strip_prefix("bc:{")
                    .and_then(|r| r.strip_suffix('}'))
                else {
                    return;
                };
                match parse_envelope(&payload) {
                    Some(envelope) => self.arrived(room, envelope).await,
                    None => tracing::warn!(%channel, "cluster: malformed envelope dropped"),
                }
            }
            Event::SubscriberLost { generation } => {
                if generation == self.generation {
                    tracing::warn!("cluster: Redis subscription lost");
                    self.sink = None;
                }
            }
            Event::Flush(done) => {
                let _ = done.send(());
            }
        }
    }

    async fn tick(&mut self) {
        if self.sink.is_none() {
            self.resubscribe().await;
            return;
        }
        match self.probe {
            Some((_, sent)) if sent.elapsed() > self.probe_timeout => {
                // PUBLISH worked but nothing came back: the subscription is
                // silently dead (centrifugal/centrifugo#1189).
                tracing::warn!("cluster: probe not back in time; subscribing again");
                self.resubscribe().await;
                return;
            }
            Some(_) => {}
            None => {
                let number = rand::random::<u64>() >> 1;
                let mut publish = redis::cmd("PUBLISH");
                publish
                    .arg(format!("bc:node:{}", self.instance))
                    .arg(number);
                let publish = publish.query_async::<i64>(&mut self.conn);
                // Only a probe Redis took counts: Redis being down is the
                // publisher's to report, not a dead subscription.
                if let Ok(Ok(_)) = timeout(CALL_TIMEOUT, publish).await {
                    self.probe = Some((number, Instant::now()));
                }
            }
        }
        if self.last_reap.elapsed() >= self.reap_every {
            self.last_reap = Instant::now();
            if !self.outbox.down.load(Ordering::Relaxed) {
                for room in self.rooms.keys() {
                    let _ = self.outbox.push(room, Op::Reap, false);
                }
            }
        }
    }

    /// Makes a new subscription (this node's channel and every room's), then
    /// catches every room up from its stream.
    async fn resubscribe(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        self.sink = None;
        self.probe = None;
        self.generation += 1;
        let generation = self.generation;
        let pubsub = match timeout(CALL_TIMEOUT, self.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => return, // Redis is down: the next tick tries again
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut channels = vec![format!("bc:node:{}", self.instance)];
        channels.extend(self.rooms.keys().map(|room| room_channel(room)));
        if !matches!(
            timeout(CALL_TIMEOUT, sink.subscribe(&channels)).await,
            Ok(Ok(()))
        ) {
            return;
        }
        let events = self.events.clone();
        let reader = tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                let event = Event::Message {
                    generation,
                    channel: message.get_channel_name().to_owned(),
                    payload: message.get_payload_bytes().to_vec(),
                };
                if events.send(event).is_err() {
                    return;
                }
            }
            let _ = events.send(Event::SubscriberLost { generation });
        });
        self.reader = Some(reader.abort_handle());
        self.sink = Some(sink);
        if generation > 1 {
            self.stats.resubscribes.fetch_add(1, Ordering::Relaxed);
            tracing::info!("cluster: subscribed again; catching up");
        }
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.catch_up(&room, None).await;
        }
    }

    async fn subscribe(&mut self, room: &str) {
        if let Some(sink) = &mut self.sink {
            match timeout(CALL_TIMEOUT, sink.subscribe(room_channel(room))).await {
                Ok(Ok(())) => {}
                // Subscribe all again, this one included.
                _ => self.sink = None,
            }
        }
    }

    async fn unsubscribe(&mut self, room: &str) {
        if let Some(sink) = &mut self.sink {
            if !matches!(
                timeout(CALL_TIMEOUT, sink.unsubscribe(room_channel(room))).await,
                Ok(Ok(()))
            ) {
                self.sink = None;
            }
        }
    }

    async fn remove(&mut self, room_name: &str, id: u64, reason: Option<&'static str>) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        let name = match room.members.remove(&id) {
            Some(member) => Some(member.name),
            None => room.pending.remove(&id).map(|p| p.member.name),
        };
        if let Some(name) = name {
            // (None: dropped as too slow, and the leave went out then.)
            let op = Op::Leave {
                member: format!("{}/{id}", self.instance),
                name,
                reason,
            };
            let _ = self.outbox.push(room_name, op, false);
        }
        if room.members.is_empty() && room.pending.is_empty() {
            self.rooms.remove(room_name);
            self.unsubscribe(room_name).await;
        }
    }

    async fn joined(
        &mut self,
        room_name: &str,
        id: u64,
        seq: u64,
        epoch: String,
        names: Vec<String>,
    ) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        let Some(pending) = room.pending.get_mut(&id) else {
            return; // it left before Redis answered; its leave follows
        };
        let welcome = welcome(
            room_name,
            &pending.member.name,
            &names,
            &pending.member.link,
        );
        pending.joined = Some((seq, epoch.clone(), welcome));
        match &room.next {
            None => {
                room.next = Some((seq, epoch));
                let early = std::mem::take(&mut room.early);
                for envelope in early {
                    self.arrived(room_name, envelope).await;
                }
            }
            Some((next, current)) if *current == epoch && *next <= seq => {
                // Welcomed when its join is delivered.
            }
            Some((next, current)) => {
                // The dispatcher is already past the join: what this member
                // missed since is in `recent`, or history moved on.
                let (next, same_epoch) = (*next, *current == epoch);
                let pending = room.pending.remove(&id).expect("looked up above");
                let (_, _, welcome) = pending.joined.expect("set above");
                let member = pending.member;
                let _ = member.queue.try_send(welcome);
                let missed = (seq + 1..next).count();
                let replay: Vec<PreparedMessage> = room
                    .recent
                    .iter()
                    .filter(|(n, _)| *n > seq && *n < next)
                    .map(|(_, m)| m.clone())
                    .collect();
                if same_epoch && replay.len() == missed {
                    for message in replay {
                        let _ = member.queue.try_send(message);
                    }
                } else {
                    self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                    let _ = member.queue.try_send(resync_notice());
                }
                room.members.insert(id, member);
            }
        }
    }

    /// An envelope from the channel.
    async fn arrived(&mut self, room_name: &str, envelope: Envelope) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return; // no member here any more
        };
        let Some((next, epoch)) = &room.next else {
            room.early.push_back(envelope);
            if room.early.len() > EARLY {
                room.early.pop_front();
            }
            return;
        };
        if *epoch != envelope.epoch {
            // Redis lost this room's sequence: catch up in the new epoch.
            self.catch_up(room_name, Some(envelope.seq)).await;
        } else if envelope.seq < *next {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        } else if envelope.seq > *next {
            self.catch_up(room_name, Some(envelope.seq - 1)).await;
        }
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        match &room.next {
            Some((next, epoch)) if *epoch == envelope.epoch && envelope.seq == *next => {
                self.deliver(room_name, envelope);
            }
            Some((next, epoch)) if *epoch == envelope.epoch && envelope.seq < *next => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Some((_, epoch)) if *epoch == envelope.epoch => {
                // The stream could not fill the gap (trimmed): say so, and go
                // on from here.
                self.resync(room_name, envelope.seq, envelope.epoch.clone());
                self.deliver(room_name, envelope);
            }
            // Of an epoch Redis no longer has (a straggler of the old one), or
            // Redis did not answer the catch-up: the next catch-up decides.
            _ => {}
        }
    }

    /// Delivers from the room's stream what is missing up to `upto` (all of
    /// it if `None`); on a new epoch or trimmed history, tells the members.
    async fn catch_up(&mut self, room_name: &str, upto: Option<u64>) {
        let Some(room) = self.rooms.get(room_name) else {
            return;
        };
        let Some((next, epoch)) = room.next.clone() else {
            return; // its first join's answer will say where to start
        };
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(room_key(room_name, "epoch"));
        pipe.cmd("GET").arg(room_key(room_name, "seq"));
        pipe.cmd("XRANGE")
            .arg(room_key(room_name, "log"))
            .arg(format!("{next}-0"))
            .arg(upto.map_or("+".to_owned(), |n| format!("{n}-0")))
            .arg("COUNT")
            .arg(HISTORY);
        let mut conn = self.conn.clone();
        let reply = timeout(
            CALL_TIMEOUT,
            pipe.query_async::<(Option<String>, Option<u64>, StreamRangeReply)>(&mut conn),
        )
        .await;
        let Ok(Ok((current_epoch, last, range))) = reply else {
            // Redis is down: the resubscription catches up once it is back.
            return;
        };
        let (Some(current_epoch), Some(last)) = (current_epoch, last) else {
            return; // nothing there yet (a restart without persistence)
        };
        if current_epoch != epoch {
            // A new epoch: everything this node knew of the room is gone.
            // Members get the notice, and the new epoch from its start.
            self.resync(room_name, 1, current_epoch.clone());
            let mut pipe = redis::pipe();
            pipe.cmd("XRANGE")
                .arg(room_key(room_name, "log"))
                .arg("-")
                .arg(upto.map_or("+".to_owned(), |n| format!("{n}-0")))
                .arg("COUNT")
                .arg(HISTORY);
            let reply = timeout(
                CALL_TIMEOUT,
                pipe.query_async::<(StreamRangeReply,)>(&mut conn),
            )
            .await;
            if let Ok(Ok((range,))) = reply {
                self.deliver_range(room_name, range, &current_epoch).await;
            }
            return;
        }
        if range.ids.is_empty() && upto.is_none() && last >= next {
            // Numbered past us, yet none of it in the stream: trimmed away.
            self.resync(room_name, last + 1, epoch);
            return;
        }
        self.deliver_range(room_name, range, &epoch).await;
    }

    /// Delivers a range read from the room's stream, pacing it to the
    /// members' queues for up to [`CATCH_UP_GRACE`] in all.
    async fn deliver_range(&mut self, room_name: &str, range: StreamRangeReply, epoch: &str) {
        let deadline = Instant::now() + CATCH_UP_GRACE;
        for entry in range.ids {
            let Some(Value::BulkString(payload)) = entry.map.get("m") else {
                continue;
            };
            let Some(envelope) = parse_envelope(payload) else {
                continue;
            };
            let Some(room) = self.rooms.get_mut(room_name) else {
                return;
            };
            let Some((next, _)) = &room.next else {
                return;
            };
            if envelope.epoch != epoch || envelope.seq < *next {
                continue;
            }
            if envelope.seq > *next {
                // Trimmed past what we needed.
                self.make_room(room_name, deadline).await;
                self.resync(room_name, envelope.seq, envelope.epoch.clone());
            }
            self.stats.from_history.fetch_add(1, Ordering::Relaxed);
            self.make_room(room_name, deadline).await;
            self.deliver(room_name, envelope);
        }
    }

    /// Waits, until `deadline` at the latest, for every member of the room
    /// whose queue is full to take a message; [`offer`](Self::offer) drops
    /// whoever is still full after it.
    async fn make_room(&self, room_name: &str, deadline: Instant) {
        let Some(room) = self.rooms.get(room_name) else {
            return;
        };
        let full: Vec<mpsc::Sender<PreparedMessage>> = room
            .members
            .values()
            .filter(|member| member.queue.capacity() == 0)
            .map(|member| member.queue.clone())
            .collect();
        for queue in full {
            // The permit is dropped at once: it only says there is room.
            let _ = tokio::time::timeout_at(deadline, queue.reserve()).await;
        }
    }

    /// History was lost: members are told, and delivery goes on from `seq`.
    fn resync(&mut self, room_name: &str, seq: u64, epoch: String) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        tracing::warn!(
            room = room_name,
            "cluster: history lost; members told to resync"
        );
        self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        room.next = Some((seq, epoch));
        room.recent.clear();
        // Members still waiting for a join of the old epoch are welcomed now:
        // that join will not come again.
        let waiting: Vec<u64> = room
            .pending
            .iter()
            .filter(|(_, p)| p.joined.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            let pending = room.pending.remove(&id).expect("listed above");
            let (_, _, welcome) = pending.joined.expect("filtered above");
            let _ = pending.member.queue.try_send(welcome);
            room.members.insert(id, pending.member);
        }
        let notice = resync_notice();
        let members: Vec<u64> = room.members.keys().copied().collect();
        for id in members {
            self.offer(room_name, id, notice.clone());
        }
    }

    /// Delivers the room's next envelope to its members here.
    fn deliver(&mut self, room_name: &str, envelope: Envelope) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        room.next = Some((envelope.seq + 1, envelope.epoch.clone()));
        let message = match envelope.kind {
            b'b' => Message::binary(envelope.body),
            _ => match String::from_utf8(envelope.body.to_vec()) {
                Ok(text) => Message::text(text),
                Err(_) => return,
            },
        };
        let Ok(prepared) = PreparedMessage::new(message) else {
            return;
        };
        room.recent.push_back((envelope.seq, prepared.clone()));
        if room.recent.len() > RECENT {
            room.recent.pop_front();
        }
        let ids: Vec<u64> = room.members.keys().copied().collect();
        for id in ids {
            self.offer(room_name, id, prepared.clone());
        }
        // The member whose join this is gets its welcome instead, and then
        // everything after.
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        let welcomed: Vec<u64> = room
            .pending
            .iter()
            .filter(|(_, p)| {
                p.joined
                    .as_ref()
                    .is_some_and(|(seq, epoch, _)| *seq == envelope.seq && *epoch == envelope.epoch)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in welcomed {
            let pending = room.pending.remove(&id).expect("listed above");
            let (_, _, welcome) = pending.joined.expect("filtered above");
            let _ = pending.member.queue.try_send(welcome);
            room.members.insert(id, pending.member);
        }
    }

    /// Offers `message` to one member; one whose queue is full is dropped
    /// (its session closes with 1008) and its leave goes out to every node.
    fn offer(&mut self, room_name: &str, id: u64, message: PreparedMessage) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        let Some(member) = room.members.get(&id) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = member.queue.try_send(message) {
            let member = room.members.remove(&id).expect("looked up above");
            member.dropped.cancel();
            let op = Op::Leave {
                member: format!("{}/{id}", self.instance),
                name: member.name,
                reason: Some("too slow"),
            };
            let _ = self.outbox.push(room_name, op, false);
            // (The room is not left empty of subscription here: the
            // session's own leave comes next and does that.)
        }
    }
}

fn welcome(room: &str, name: &str, names: &[String], link: &Link) -> PreparedMessage {
    let mut json = String::from(r#"{"type":"welcome","room":"#);
    push_json_string(&mut json, room);
    json.push_str(r#","name":"#);
    push_json_string(&mut json, name);
    json.push_str(r#","members":["#);
    for (i, member) in names.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(&mut json, member);
    }
    let _ = write!(json, r#"],"time":{}"#, now_millis());
    link.push_json(&mut json);
    json.push('}');
    prepared_text(json)
}

fn resync_notice() -> PreparedMessage {
    prepared_text(format!(
        r#"{{"type":"resync","reason":"history lost","time":{}}}"#,
        now_millis()
    ))
}

/// What a sender gets for a chat line the cluster did not take.
pub(crate) fn refused_notice(text: Option<&str>) -> PreparedMessage {
    let mut json = String::from(r#"{"type":"error","reason":"broker unavailable""#);
    if let Some(text) = text {
        json.push_str(r#","text":"#);
        push_json_string(&mut json, text);
    }
    let _ = write!(json, r#","time":{}}}"#, now_millis());
    prepared_text(json)
}

fn prepared_text(json: String) -> PreparedMessage {
    PreparedMessage::new(Message::text(json)).expect("text messages always encode")
}
