//! Encoding frames and messages into a buffer, or into a sink that can queue
//! shared payloads without copying them (the connection's write queue). Owns
//! masking on the way out (§5.3), fragmentation (§5.4) and the checks of what
//! may be sent (§5.5, §7.4); never does I/O.

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::Role;
use crate::error::{Error, UsageError};
use crate::extension::Transform;
use crate::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::mask::apply_mask;
use crate::message::Message;

/// Payloads at least this long are sent without copying where the sink can take
/// shared bytes (server role: no mask to apply). Below it, one copy into the
/// write buffer is cheaper than two more I/O slices per message (measured with
/// benches/echo: at 1 KiB, copying was faster).
pub(crate) const SHARE_MIN: usize = 8 * 1024;

/// Where encoded frames go: a buffer for headers and copied payloads, and, for a
/// writer that sends shared bytes without copying them (vectored writes),
/// somewhere to queue those.
pub(crate) trait FrameSink {
    /// The buffer headers and copied payloads are appended to.
    fn buf(&mut self) -> &mut BytesMut;

    /// Queues `payload` to go out right after what `buf` holds now, without
    /// copying it; `false` if this sink cannot, and the caller copies.
    fn try_share(&mut self, payload: &Bytes) -> bool {
        let _ = payload;
        false
    }
}

impl FrameSink for BytesMut {
    fn buf(&mut self) -> &mut BytesMut {
        self
    }
}

/// Writes a frame header for a payload of `payload_len` bytes, returning the
/// masking key it announced: a fresh random one when we are the client (§5.3).
fn put_header(
    role: Role,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload_len: usize,
    dst: &mut BytesMut,
) -> Option<[u8; 4]> {
    let mask = match role {
        Role::Client => Some(rand::random::<[u8; 4]>()),
        Role::Server => None,
    };
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: payload_len as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let head_len = header.write(&mut head);
    dst.reserve(head_len + payload_len);
    dst.put_slice(&head[..head_len]);
    mask
}

/// Appends one frame to `dst`: header, then the payload, masked when we are the
/// client.
pub(crate) fn encode_frame(
    role: Role,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &[u8],
    dst: &mut BytesMut,
) {
    encode_frame_parts(role, fin, rsv, opcode, &[payload], dst);
}

/// Like [`encode_frame`] for a payload given in pieces (a close code and reason).
pub(crate) fn encode_frame_parts(
    role: Role,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    parts: &[&[u8]],
    dst: &mut BytesMut,
) {
    let payload_len: usize = parts.iter().map(|p| p.len()).sum();
    let mask = put_header(role, fin, rsv, opcode, payload_len, dst);
    let start = dst.len();
    for part in parts {
        dst.put_slice(part);
    }
    if let Some(key) = mask {
        apply_mask(&mut dst[start..], key, 0);
    }
}

/// Appends a data frame, sharing a large unmasked payload instead of copying it
/// when the sink can.
fn put_data_frame(
    role: Role,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &Bytes,
    dst: &mut impl FrameSink,
) {
    if role == Role::Server && payload.len() >= SHARE_MIN {
        put_header(role, fin, rsv, opcode, payload.len(), dst.buf());
        if !dst.try_share(payload) {
            dst.buf().put_slice(payload);
        }
    } else {
        encode_frame(role, fin, rsv, opcode, payload, dst.buf());
    }
}

/// Appends `message` to `dst`: a control message as one frame, a data message
/// as frames of at most `fragment_size` payload bytes (§5.4). Fails on a control
/// message whose payload is over 125 bytes (§5.5) or a close code that may not be
/// sent (§7.4).
pub(crate) fn encode_message(
    role: Role,
    message: &Message,
    fragment_size: usize,
    transform: Option<&mut Transform>,
    dst: &mut impl FrameSink,
) -> Result<(), Error> {
    let (opcode, payload): (OpCode, &Bytes) = match message {
        Message::Text(t) => (OpCode::Text, t.as_bytes()),
        Message::Binary(b) => (OpCode::Binary, b),
        Message::Ping(b) | Message::Pong(b) => {
            if b.len() > MAX_CONTROL_PAYLOAD {
                return Err(UsageError::ControlFrameTooLong.into());
            }
            let opcode = if matches!(message, Message::Ping(_)) {
                OpCode::Ping
            } else {
                OpCode::Pong
            };
            encode_frame(role, true, 0, opcode, b, dst.buf());
            return Ok(());
        }
        Message::Close(None) => {
            encode_frame(role, true, 0, OpCode::Close, &[], dst.buf());
            return Ok(());
        }
        Message::Close(Some(close)) => {
            if 2 + close.reason.len() > MAX_CONTROL_PAYLOAD {
                return Err(UsageError::ControlFrameTooLong.into());
            }
            if !close.code.is_sendable() {
                return Err(UsageError::UnsendableCloseCode(close.code.0).into());
            }
            let code = close.code.0.to_be_bytes();
            encode_frame_parts(
                role,
                true,
                0,
                OpCode::Close,
                &[&code, close.reason.as_bytes()],
                dst.buf(),
            );
            return Ok(());
        }
    };
    // RFC 7692 §6: a compressed message has RSV1 on its first frame only.
    let compressed;
    let (payload, rsv) = match transform {
        Some(t) if t.wants(payload.len()) => {
            compressed = t.encode(payload)?;
            (&compressed, t.rsv())
        }
        _ => (payload, 0),
    };
    let fragment_size = fragment_size.max(1);
    if payload.len() <= fragment_size {
        put_data_frame(role, true, rsv, opcode, payload, dst);
        return Ok(());
    }
    let mut start = 0;
    while start < payload.len() {
        let end = (start + fragment_size).min(payload.len());
        let (op, rsv) = if start == 0 {
            (opcode, rsv)
        } else {
            (OpCode::Continuation, 0)
        };
        let piece = payload.slice(start..end);
        put_data_frame(role, end == payload.len(), rsv, op, &piece, dst);
        start = end;
    }
    Ok(())
}
