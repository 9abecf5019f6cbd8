//! The HTTP transport's realtime side (`docs/protocol.md`, "The HTTP transport"): the same
//! [`SessionActor`](super::session::SessionActor) as a WebSocket, its frames carried by a
//! Server-Sent Events response ([`EventStream`], `GET /api/stream`) one way and by `POST`
//! requests the other ([`Streams::post`]).
//!
//! The session does not know: its [`Outbox`](super::outbox::Outbox) writes into a
//! [`Wire::Events`](super::outbox::Wire) channel that [`EventStream`] encodes as events
//! instead of WebSocket frames, and its [`InboundFrames`](super::frames::InboundFrames) read
//! the posted frames from a channel instead of a socket, under the same limits (rate, size).
//! The POSTs find their session by the stream id that [`EventStream`] sends first, and only
//! with the credential that opened the stream.
//!
//! With several nodes behind a balancer, a POST may reach a node other than the one holding
//! its stream: the stream id names its node (`st-….node-1`), and that node's
//! [`StreamRelay`] takes the frames over the broker and answers once they are queued, so the
//! POST answers as it would on the right node and the next POST cannot overtake them.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context as TaskContext, Poll},
};

use actix::prelude::*;
use actix_web::{
    body::{BodySize, MessageBody},
    web::{Bytes, BytesMut},
};
use actix_ws::{CloseCode, CloseReason};
use actix_ws::{Item, Message};
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::broker::{Broker, Inbound, NodeId};

/// Posted frames waiting for their session: a POST waits (without failing) while this many
/// are queued, as a WebSocket client waits for its TCP window.
pub const INBOUND_QUEUE: usize = 64;
/// Frames between the session's outbox and the response body (as actix-ws's channel).
pub const OUTBOUND_CHANNEL: usize = 32;
/// A chunk of the event stream grows to about this size before it is handed to the
/// connection (frames that are ready at once go out in one write).
const CHUNK_BYTES: usize = 16 * 1024;

/// The credential's SHA-256, as `crate::auth::token_digest` gives it.
pub type CredentialDigest = [u8; 32];

/// The open event streams, by stream id: where a POST finds its session.
#[derive(Default)]
pub struct Streams {
    open: Mutex<HashMap<Arc<str>, Posted>>,
    /// This node's id (several nodes), put at the end of every stream id.
    node: Option<NodeId>,
}

/// One open stream as its POSTs see it.
struct Posted {
    /// The credential that opened it: only the same one may post into it.
    credential: CredentialDigest,
    /// Into the session's inbound frames.
    inbound: mpsc::Sender<Message>,
}

/// Why a POST's frames were not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum PostError {
    /// No open stream with that id for this credential (never opened, ended, or another's).
    NoStream,
}

/// What opening a stream gives: the response body, and the channels the session runs on.
pub struct Opened {
    pub body: EventStream,
    /// The session's outbox writes here.
    pub outbound: mpsc::Sender<Message>,
    /// The session reads the posted frames from here.
    pub inbound: mpsc::Receiver<Message>,
}

impl Streams {
    /// Opens a stream for the holder of `credential`: a fresh random id, announced as the
    /// stream's first event.
    pub fn open(self: &Arc<Self>, credential: CredentialDigest) -> Opened {
        let mut id = format!(
            "st-{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        if let Some(node) = &self.node {
            id.push('.');
            id.push_str(node.0.as_str());
        }
        let id: Arc<str> = Arc::from(id);
        let (outbound, frames) = mpsc::channel(OUTBOUND_CHANNEL);
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                Arc::clone(&id),
                Posted {
                    credential,
                    inbound: inbound_tx.clone(),
                },
            );
        let preamble = format!(
            "event: stream\ndata: {{\"stream_id\":\"{id}\",\"post\":\"/api/stream/{id}\"}}\n\n"
        );
        let body = EventStream {
            preamble: Some(Bytes::from(preamble)),
            frames,
            heard: inbound_tx,
            registration: Registration {
                streams: Arc::clone(self),
                id,
            },
            done: false,
        };
        Opened {
            body,
            outbound,
            inbound,
        }
    }

    /// The sender into stream `id`'s session, if it is open for `credential`.
    fn find(&self, id: &str, credential: &CredentialDigest) -> Option<mpsc::Sender<Message>> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(id)
            .filter(|posted| constant_time_eq(&posted.credential, credential))
            .map(|posted| posted.inbound.clone())
    }

    /// Hands `frames` to stream `id`'s session, in order, as if they had come over its
    /// connection; waits while its inbound queue is full.
    pub async fn post(
        &self,
        id: &str,
        credential: &CredentialDigest,
        frames: impl IntoIterator<Item = Message>,
    ) -> Result<(), PostError> {
        let inbound = self.find(id, credential).ok_or(PostError::NoStream)?;
        for frame in frames {
            inbound.send(frame).await.map_err(|_| PostError::NoStream)?;
        }
        Ok(())
    }

    /// The streams of a node of several (`node`), whose ids name it.
    pub fn of_node(node: NodeId) -> Self {
        Streams {
            open: Mutex::default(),
            node: Some(node),
        }
    }

    /// The node holding stream `id`, when that is another node of the cluster.
    pub fn elsewhere(&self, id: &str) -> Option<NodeId> {
        let mine = self.node.as_ref()?;
        let (_, node) = id.rsplit_once('.')?;
        (node != mine.0.as_str() && !node.is_empty()).then(|| NodeId(node.into()))
    }

    /// How many streams are open.
    pub fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no stream is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Equal digests, compared without an early exit.
fn constant_time_eq(a: &CredentialDigest, b: &CredentialDigest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A stream's entry in [`Streams`], removed when its response body is dropped (the client
/// went away, or the stream ended): the session's inbound frames then end, as a socket's do.
struct Registration {
    streams: Arc<Streams>,
    id: Arc<str>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.streams
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// The body of `GET /api/stream` (`text/event-stream`): the stream's id first, then every
/// frame of the session's outbox as an event; a ping is a heartbeat comment, the close frame
/// a `close` event with its code and reason, after which the body ends.
///
/// Every frame is one line of JSON (the server writes no raw newline), so a frame is one
/// `data:` line; a long one that the outbox sends in fragments is written as they come, one
/// `data:` line still. `chat.message` frames carry `id:` (their `msg_id`).
pub struct EventStream {
    preamble: Option<Bytes>,
    frames: mpsc::Receiver<Message>,
    /// Into the session's inbound frames: a heartbeat the connection took counts as hearing
    /// from the client, which has no pong to send.
    heard: mpsc::Sender<Message>,
    registration: Registration,
    /// The close event is written.
    done: bool,
}

impl EventStream {
    /// The stream's id (also in its first event).
    pub fn id(&self) -> &str {
        &self.registration.id
    }

    /// Appends what `frame` comes to; true once the stream is over.
    fn encode(&mut self, frame: Message, out: &mut BytesMut) -> bool {
        match frame {
            Message::Text(text) => {
                if let Some(msg_id) = resumable_id(&text) {
                    out.extend_from_slice(b"id: ");
                    out.extend_from_slice(msg_id.as_bytes());
                    out.extend_from_slice(b"\n");
                }
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(text.as_bytes());
                out.extend_from_slice(b"\n\n");
            }
            Message::Continuation(item) => match item {
                Item::FirstText(bytes) => {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(&bytes);
                }
                Item::Continue(bytes) => out.extend_from_slice(&bytes),
                Item::Last(bytes) => {
                    out.extend_from_slice(&bytes);
                    out.extend_from_slice(b"\n\n");
                }
                // The protocol sends no binary.
                Item::FirstBinary(_) => {}
            },
            Message::Ping(_) => {
                out.extend_from_slice(b":\n\n");
                // Full: the session is busy reading posted frames, which are heard anyway.
                let _ = self.heard.try_send(Message::Pong(Bytes::new()));
            }
            Message::Close(reason) => {
                let (code, reason) = reason.map_or((1000, String::new()), |r| {
                    (u16::from(r.code), r.description.unwrap_or_default())
                });
                let data = serde_json::json!({"code": code, "reason": reason});
                out.extend_from_slice(format!("event: close\ndata: {data}\n\n").as_bytes());
                return true;
            }
            Message::Binary(_) | Message::Pong(_) | Message::Nop => {}
        }
        false
    }
}

/// The `msg_id` of a `chat.message` frame, as text: such a frame can be resumed (a client
/// that reconnects asks for what came after it, `room.join` `since`).
fn resumable_id(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(r#"{"type":"chat.message","#)?;
    // A key: inside a JSON string every quote is escaped, so this cannot match in one.
    let at = rest.find(r#""msg_id":"#)? + r#""msg_id":"#.len();
    let digits = &rest[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    (end > 0).then(|| &digits[..end])
}

impl MessageBody for EventStream {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        if let Some(preamble) = this.preamble.take() {
            return Poll::Ready(Some(Ok(preamble)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let mut out = BytesMut::new();
        while out.len() < CHUNK_BYTES {
            match this.frames.poll_recv(cx) {
                Poll::Ready(Some(frame)) => {
                    if this.encode(frame, &mut out) {
                        this.done = true;
                        break;
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if !out.is_empty() {
            Poll::Ready(Some(Ok(out.freeze())))
        } else if this.done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

/// Frames posted to one node for a stream another node holds ([`Kind::Stream`] requests).
///
/// [`Kind::Stream`]: super::broker::Kind::Stream
#[derive(Debug, Serialize, Deserialize)]
pub struct StreamPost {
    pub stream: String,
    /// The posting credential's digest, hex (the stream takes posts only with its own).
    pub credential: String,
    /// The frames, in order; or none and `close` for a `DELETE`.
    pub frames: Vec<String>,
    pub close: bool,
}

impl StreamPost {
    /// The messages the stream's session reads.
    fn messages(self) -> Vec<Message> {
        let mut messages: Vec<Message> = self
            .frames
            .into_iter()
            .map(|f| Message::Text(ByteString::from(f)))
            .collect();
        if self.close {
            messages.push(Message::Close(Some(CloseReason {
                code: CloseCode::Normal,
                description: None,
            })));
        }
        messages
    }
}

/// Takes, on the node holding a stream, the frames another node received for it, and answers
/// whether the stream took them (`true`) or is not open here for that credential (`false`).
pub struct StreamRelay {
    pub streams: Arc<Streams>,
    pub broker: Broker,
}

impl Actor for StreamRelay {
    type Context = Context<Self>;
}

impl Handler<Inbound> for StreamRelay {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Self::Context) {
        let (Some(request), Some(post)) = (msg.request, msg.parse::<StreamPost>()) else {
            return;
        };
        let streams = Arc::clone(&self.streams);
        let broker = self.broker.clone();
        let from = msg.from;
        ctx.spawn(
            async move {
                let taken = match hex_digest(&post.credential) {
                    Some(credential) => {
                        let stream = post.stream.clone();
                        streams
                            .post(&stream, &credential, post.messages())
                            .await
                            .is_ok()
                    }
                    None => false,
                };
                broker.reply(&from, request, &taken);
            }
            .into_actor(self),
        );
    }
}

/// A credential digest from its hex form.
fn hex_digest(hex: &str) -> Option<CredentialDigest> {
    let mut digest = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chat_messages_carry_an_event_id_and_it_is_their_msg_id() {
        let chat = r#"{"type":"chat.message","room":"a\"msg_id\":9","msg_id":42,"from":{}}"#;
        assert_eq!(resumable_id(chat), Some("42"));
        assert_eq!(resumable_id(r#"{"type":"ack","msg_id":42}"#), None);
    }
}
