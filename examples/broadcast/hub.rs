//! The hub: the rooms, their members, and fan-out.
//!
//! This module owns who is in which room, the presence notices (welcome, join,
//! rename, leave) and delivery: a message is one [`PreparedMessage`], offered
//! to each member's bounded queue with `try_send`, and a member whose queue is
//! full is dropped from the room on the spot. It never awaits and never
//! touches a connection: it fills queues and cancels tokens, and each session
//! writes its own queue to its own socket, so no member can stall another.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use wscodec::{Message, PreparedMessage};

use super::session::Link;
use super::text::{now_millis, push_json_string};

/// The rooms and their members.
#[derive(Default)]
pub(crate) struct Hub {
    rooms: Mutex<HashMap<String, Room>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Room {
    /// By id, which is the order of joining.
    members: BTreeMap<u64, Member>,
}

struct Member {
    name: String,
    queue: mpsc::Sender<PreparedMessage>,
    /// Cancelled when the member is dropped for being too slow.
    dropped: CancellationToken,
}

impl Hub {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        // Nothing under the lock can leave a room half-updated.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a member: it gets the welcome (which says how it came,
    /// `link`), the others a join notice.
    pub(crate) fn join(
        &self,
        room_name: &str,
        name: &str,
        link: Link,
        queue: mpsc::Sender<PreparedMessage>,
        dropped: CancellationToken,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.rooms();
        let room = rooms.entry(room_name.to_owned()).or_default();
        let mut welcome = String::from(r#"{"type":"welcome","room":"#);
        push_json_string(&mut welcome, room_name);
        welcome.push_str(r#","name":"#);
        push_json_string(&mut welcome, name);
        welcome.push_str(r#","members":["#);
        for member in room.members.values() {
            push_json_string(&mut welcome, &member.name);
            welcome.push(',');
        }
        push_json_string(&mut welcome, name);
        let _ = write!(welcome, r#"],"time":{}"#, now_millis());
        link.push_json(&mut welcome);
        welcome.push('}');
        // A fresh queue has room for one.
        let _ = queue.try_send(prepared_text(welcome));
        let notice = presence("join", name, room.members.len() + 1, None);
        deliver(&mut rooms, room_name, notice);
        let member = Member {
            name: name.to_owned(),
            queue,
            dropped,
        };
        rooms
            .entry(room_name.to_owned())
            .or_default()
            .members
            .insert(id, member);
        id
    }

    /// Removes a member (if still there) and tells the others.
    pub(crate) fn leave(&self, room_name: &str, id: u64) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(room_name) else {
            return;
        };
        let member = room.members.remove(&id);
        let members = room.members.len();
        if members == 0 {
            rooms.remove(room_name);
        } else if let Some(member) = member {
            // (None: dropped as too slow, and the others were told then.)
            let notice = presence("leave", &member.name, members, None);
            deliver(&mut rooms, room_name, notice);
        }
    }

    /// Renames a member and tells everyone, the member included.
    pub(crate) fn rename(&self, room_name: &str, id: u64, name: &str) {
        let mut rooms = self.rooms();
        let Some(member) = rooms
            .get_mut(room_name)
            .and_then(|room| room.members.get_mut(&id))
        else {
            return;
        };
        let from = std::mem::replace(&mut member.name, name.to_owned());
        if from == name {
            return;
        }
        let mut json = String::from(r#"{"type":"rename","from":"#);
        push_json_string(&mut json, &from);
        json.push_str(r#","name":"#);
        push_json_string(&mut json, name);
        let _ = write!(json, r#","time":{}}}"#, now_millis());
        deliver(&mut rooms, room_name, prepared_text(json));
    }

    /// Queues `message` for every member of the room.
    pub(crate) fn broadcast(&self, room_name: &str, message: &PreparedMessage) {
        deliver(&mut self.rooms(), room_name, message.clone());
    }
}

/// Offers `message` to every member of the room; drops the members whose
/// queue is full, telling the others (which may drop more).
fn deliver(rooms: &mut HashMap<String, Room>, room_name: &str, message: PreparedMessage) {
    let mut pending = vec![message];
    while let Some(message) = pending.pop() {
        let Some(room) = rooms.get_mut(room_name) else {
            return;
        };
        let mut too_slow = Vec::new();
        room.members.retain(|_, member| {
            match member.queue.try_send(message.clone()) {
                Err(TrySendError::Full(_)) => {
                    member.dropped.cancel();
                    too_slow.push(std::mem::take(&mut member.name));
                    false
                }
                // Closed: its session is ending and will call `leave`.
                Ok(()) | Err(TrySendError::Closed(_)) => true,
            }
        });
        let members = room.members.len();
        pending.extend(
            too_slow
                .iter()
                .map(|name| presence("leave", name, members, Some("too slow"))),
        );
    }
}

fn presence(kind: &str, name: &str, members: usize, reason: Option<&str>) -> PreparedMessage {
    let mut json = format!(r#"{{"type":"{kind}","name":"#);
    push_json_string(&mut json, name);
    let _ = write!(json, r#","members":{members}"#);
    if let Some(reason) = reason {
        json.push_str(r#","reason":"#);
        push_json_string(&mut json, reason);
    }
    let _ = write!(json, r#","time":{}}}"#, now_millis());
    prepared_text(json)
}

fn prepared_text(json: String) -> PreparedMessage {
    PreparedMessage::new(Message::text(json)).expect("text messages always encode")
}
