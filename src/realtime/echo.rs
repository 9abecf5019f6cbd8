//! [`EchoActor`]: the test-only echo endpoint (`/ws-echo`, mounted only with the hidden
//! `--ws-echo-for-tests`). It sends every message back as it came, text as text and binary as
//! binary, through the same frame handling as `/ws` ([`super::frames`]: limits, fragments,
//! UTF-8, pings, close codes; the session's [`Outbox`]), so that the Autobahn|Testsuite
//! (`tests/autobahn/run.sh`) checks the transport that sessions run on.

use std::sync::Arc;

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_ws::{CloseCode, Message};
use bytestring::ByteString;

use super::{
    frames::{self, Endpoint, Inbound, InboundFrames},
    metrics::RealtimeMetrics,
    outbox::Outbox,
};
use crate::config::Settings;

/// One echo connection.
pub struct EchoActor {
    outbox: Outbox,
    /// The close frame is on its way: a connection is closed once.
    closing: bool,
}

impl EchoActor {
    /// Starts the actor for an upgraded connection.
    pub fn spawn(
        settings: &Settings,
        metrics: Arc<RealtimeMetrics>,
        session: actix_ws::Session,
        stream: InboundFrames,
    ) -> Addr<EchoActor> {
        let limit = settings.ws_outbound_queue;
        EchoActor::create(move |ctx| {
            ctx.add_stream(stream);
            EchoActor {
                outbox: Outbox::open(ctx, session, limit, metrics),
                closing: false,
            }
        })
    }
}

impl Actor for EchoActor {
    type Context = Context<Self>;

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        if !self.closing {
            Endpoint::close(self, ctx, CloseCode::Normal, "bye", true);
        }
        Running::Stop
    }
}

impl StreamHandler<Inbound> for EchoActor {
    fn handle(&mut self, item: Inbound, ctx: &mut Self::Context) {
        frames::handle(self, item, ctx);
    }

    /// The stream ended without a close frame: the connection was lost.
    fn finished(&mut self, ctx: &mut Self::Context) {
        Endpoint::lost(self, ctx);
    }
}

impl Endpoint for EchoActor {
    fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    fn closing(&mut self) -> &mut bool {
        &mut self.closing
    }

    fn on_text(&mut self, text: ByteString, _now: u32, ctx: &mut Context<Self>) {
        self.enqueue(ctx, Message::Text(text));
    }

    fn on_binary(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        self.enqueue(ctx, Message::Binary(bytes));
    }
}
