//! `bare-server`: the reference for `relay`, a WebSocket relay with no logic at all.
//!
//! What one machine can relay depends as much on the machine as on the server: the kernel's
//! TCP path and its mitigations, the hypervisor, the neighbours. The same `relay` workload run
//! against this bare relay on the same machine gives the ceiling that Tertulia's figures can
//! be read against ("N % of a bare relay here"), whatever the day's host.
//!
//! A connection to `/<pair>/a` or `/<pair>/b` is paired with the other end of `<pair>`; every
//! frame one end sends is written to the other end as it came, nothing parsed, checked,
//! authenticated or stored. One task per direction reads one socket and writes the other
//! (frames already read are written together), on one thread: no channel and no hop between
//! tasks, less than any real relay does.

use std::{cell::RefCell, collections::HashMap, net::SocketAddr, rc::Rc};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::{
    tungstenite::{
        handshake::server::{Request, Response},
        Message,
    },
    WebSocketStream,
};

use crate::{BenchError, BenchResult};

/// `tertulia-bench bare-server`
#[derive(Debug, clap::Args)]
pub struct BareServerArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8099")]
    pub bind: SocketAddr,
}

type Ws = WebSocketStream<TcpStream>;

/// The first end of each pair, by pair: which end it is, and its connection.
type Waiting = HashMap<String, (String, Ws)>;

/// Serves until the process is stopped.
pub async fn serve(args: &BareServerArgs) -> BenchResult<()> {
    let listener = TcpListener::bind(args.bind).await?;
    eprintln!("bare relay listening on {}", listener.local_addr()?);
    // The first end of each pair (`a` or `b`), until the other one arrives.
    let waiting: Rc<RefCell<Waiting>> = Rc::default();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            loop {
                let (stream, _) = listener.accept().await?;
                let waiting = Rc::clone(&waiting);
                tokio::task::spawn_local(async move {
                    if let Err(e) = admit(stream, &waiting).await {
                        eprintln!("bare relay: {e}");
                    }
                });
            }
        })
        .await
}

/// Completes the handshake; pairs the connection with its other end once both are here.
async fn admit(stream: TcpStream, waiting: &RefCell<Waiting>) -> BenchResult<()> {
    stream.set_nodelay(true)?;
    let mut path = String::new();
    // The callback's signature (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let ws = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, res: Response| {
        path = req.uri().path().to_owned();
        Ok(res)
    })
    .await?;
    let (pair, end) = path
        .trim_start_matches('/')
        .rsplit_once('/')
        .filter(|(pair, end)| !pair.is_empty() && matches!(*end, "a" | "b"))
        .ok_or_else(|| BenchError::Protocol(format!("bad path '{path}': use /<pair>/a or /b")))?;
    let mut waiting = waiting.borrow_mut();
    match waiting.remove(pair) {
        Some((other_end, other)) if other_end != end => {
            drop(waiting);
            let (to_other, from_other) = other.split();
            let (to_this, from_this) = ws.split();
            tokio::task::spawn_local(forward(from_this, to_other));
            tokio::task::spawn_local(forward(from_other, to_this));
        }
        // The first end (a second one of the same end replaces it).
        _ => {
            waiting.insert(pair.to_owned(), (end.to_owned(), ws));
        }
    }
    Ok(())
}

/// Writes every data frame read from `from` to `to`, frames already read in one write,
/// until `from` closes. Control frames stay between each client and the relay (tungstenite
/// answers pings and closes itself).
async fn forward(
    mut from: futures_util::stream::SplitStream<Ws>,
    mut to: futures_util::stream::SplitSink<Ws, Message>,
) {
    let data = |next: Option<Result<Message, _>>| match next {
        Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => Some(Some(message)),
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Some(None),
        _ => None,
    };
    // The other end stays open: its client closes it when done (closing it here would cut
    // off signals it is still waiting for).
    let mut open = true;
    while open {
        let mut next = from.next().await;
        loop {
            match data(next) {
                Some(Some(message)) => {
                    if to.feed(message).await.is_err() {
                        return;
                    }
                }
                Some(None) => {}
                None => {
                    open = false;
                    break;
                }
            }
            // What has already arrived goes out in the same write.
            match from.next().now_or_never() {
                Some(more) => next = more,
                None => break,
            }
        }
        if to.flush().await.is_err() {
            return;
        }
    }
}
