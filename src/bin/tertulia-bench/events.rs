//! The HTTP transport (`--transport http`, docs/protocol.md "The HTTP transport") over
//! HTTP/2 with prior knowledge (h2c), with the `h2` crate (hyper's HTTP/2): one TCP
//! connection per bench connection, carrying the `GET /api/stream` event stream and the
//! `POST /api/stream/{id}` requests as streams of it.
//!
//! Posts go one at a time, in order (as the browser's client does): frames fed meanwhile go
//! together in the next one. A post is answered (204) once the session has its frames, so
//! [`EventsLink::flush`] waits one HTTP/2 round trip; the replies come on the event stream.

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use h2::{client::SendRequest, RecvStream};

use crate::{http::Target, BenchError, BenchResult};

/// An open event stream and its way back.
pub struct EventsLink {
    send: SendRequest<Bytes>,
    body: RecvStream,
    /// Bytes of the stream not yet cut into events.
    buf: BytesMut,
    /// `http://host:port/api/stream/{id}`
    post_uri: String,
    bearer: String,
    /// Frames fed and not yet posted, as a JSON array's items.
    batch: Vec<String>,
}

fn h2_error(e: h2::Error) -> BenchError {
    BenchError::Protocol(format!("HTTP/2: {e}"))
}

impl EventsLink {
    /// Opens `GET /api/stream` with `token` and reads its first event (the stream's id).
    pub async fn open(target: &Target, token: &str) -> BenchResult<Self> {
        let tcp = target.open().await?;
        tcp.set_nodelay(true)?;
        let (send, connection) = h2::client::Builder::new()
            // Room for a burst of events without waiting for window updates.
            .initial_window_size(1 << 20)
            .initial_connection_window_size(1 << 22)
            .handshake::<_, Bytes>(tcp)
            .await
            .map_err(h2_error)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let bearer = format!("Bearer {token}");
        let request = http::Request::get(format!("http://{}/api/stream", target.authority))
            .header("authorization", &bearer)
            .body(())
            .map_err(|e| BenchError::Protocol(e.to_string()))?;
        let mut ready = send.clone().ready().await.map_err(h2_error)?;
        let (response, _) = ready.send_request(request, true).map_err(h2_error)?;
        let response = response.await.map_err(h2_error)?;
        if response.status() != 200 {
            return Err(BenchError::Http {
                method: "GET",
                path: "/api/stream".to_owned(),
                problem: format!("status {}", response.status()),
            });
        }
        let mut link = EventsLink {
            send,
            body: response.into_body(),
            buf: BytesMut::new(),
            post_uri: String::new(),
            bearer,
            batch: Vec::new(),
        };
        let first = link
            .next_event(true)
            .await?
            .ok_or_else(|| BenchError::Protocol("event stream ended at once".to_owned()))?;
        let path = first
            .split("\"post\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or_else(|| BenchError::Protocol(format!("no post path in {first}")))?;
        link.post_uri = format!("http://{}{path}", target.authority);
        Ok(link)
    }

    /// The next event already in the buffer: its data (a frame; the stream's own first event
    /// with `want_stream`); comments are skipped, a `close` event is an error.
    fn cut_event(&mut self, want_stream: bool) -> BenchResult<Option<String>> {
        loop {
            let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") else {
                return Ok(None);
            };
            let raw = self.buf.split_to(end + 2);
            let raw = std::str::from_utf8(&raw)
                .map_err(|_| BenchError::Protocol("event stream is not UTF-8".to_owned()))?;
            let mut data = None;
            let mut name = "message";
            for line in raw.lines() {
                if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(d.to_owned());
                } else if let Some(n) = line.strip_prefix("event: ") {
                    name = match n {
                        "stream" => "stream",
                        "close" => "close",
                        _ => "other",
                    };
                }
            }
            match (name, data) {
                ("close", data) => {
                    return Err(BenchError::Protocol(format!(
                        "server closed the stream: {}",
                        data.unwrap_or_default()
                    )))
                }
                ("stream", Some(data)) if want_stream => return Ok(Some(data)),
                ("message", Some(data)) if !want_stream => return Ok(Some(data)),
                _ => {}
            }
        }
    }

    /// Adds a chunk of the stream to the buffer, releasing its flow-control capacity.
    fn take_chunk(&mut self, chunk: Bytes) -> BenchResult<()> {
        self.body
            .flow_control()
            .release_capacity(chunk.len())
            .map_err(h2_error)?;
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn next_event(&mut self, want_stream: bool) -> BenchResult<Option<String>> {
        loop {
            if let Some(data) = self.cut_event(want_stream)? {
                return Ok(Some(data));
            }
            match self.body.data().await {
                Some(chunk) => self.take_chunk(chunk.map_err(h2_error)?)?,
                None => return Ok(None),
            }
        }
    }

    /// The next frame's text; `None` when the stream ended.
    pub async fn next_text(&mut self) -> BenchResult<Option<String>> {
        self.next_event(false).await
    }

    /// A frame already received, if any, without waiting.
    pub fn ready_text(&mut self) -> BenchResult<Option<String>> {
        loop {
            if let Some(data) = self.cut_event(false)? {
                return Ok(Some(data));
            }
            match self.body.data().now_or_never() {
                Some(Some(chunk)) => self.take_chunk(chunk.map_err(h2_error)?)?,
                _ => return Ok(None),
            }
        }
    }

    /// Queues a frame for the next post.
    pub fn feed(&mut self, text: String) {
        self.batch.push(text);
    }

    /// Posts the queued frames (one request) and waits until the server has them.
    pub async fn flush(&mut self) -> BenchResult<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let body = format!("[{}]", self.batch.join(","));
        self.batch.clear();
        let request = http::Request::post(&self.post_uri)
            .header("authorization", &self.bearer)
            .header("content-type", "application/json")
            .body(())
            .map_err(|e| BenchError::Protocol(e.to_string()))?;
        let mut ready = self.send.clone().ready().await.map_err(h2_error)?;
        let (response, mut stream) = ready.send_request(request, false).map_err(h2_error)?;
        stream
            .send_data(Bytes::from(body), true)
            .map_err(h2_error)?;
        let response = response.await.map_err(h2_error)?;
        if response.status() != 204 {
            return Err(BenchError::Http {
                method: "POST",
                path: self.post_uri.clone(),
                problem: format!("status {}", response.status()),
            });
        }
        Ok(())
    }

    /// Leaves on purpose (`DELETE`, the close frame with 1000: calls end at once); errors
    /// are ignored, the run is over.
    pub async fn leave(&mut self) {
        let Ok(request) = http::Request::delete(&self.post_uri)
            .header("authorization", &self.bearer)
            .body(())
        else {
            return;
        };
        let Ok(mut ready) = self.send.clone().ready().await else {
            return;
        };
        if let Ok((response, _)) = ready.send_request(request, true) {
            let _ = response.await;
        }
    }
}
