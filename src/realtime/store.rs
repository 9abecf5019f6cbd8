//! [`ChatStore`]: stores chat messages with group commit.
//!
//! While one batch is being written on the blocking pool, messages arriving from every
//! session queue up; they are written together in the next transaction. Under load many
//! messages share one SQLite commit; with no load a message is written at once.

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::{
    db::{
        self,
        models::{Message as StoredMessage, NewMessage},
        DbPool,
    },
    error::ApiError,
};

/// What storing one message yields: the stored row and whether it is new (not a retry).
pub type Stored = Result<(StoredMessage, bool), ApiError>;

/// Writes chat messages in batches, one transaction at a time.
pub struct ChatStore {
    pool: DbPool,
    pending: Vec<(NewMessage, oneshot::Sender<Stored>)>,
    /// A batch is being written.
    busy: bool,
}

impl ChatStore {
    /// A store writing to `pool`.
    pub fn new(pool: DbPool) -> Self {
        ChatStore {
            pool,
            pending: Vec::new(),
            busy: false,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() {
            return;
        }
        self.busy = true;
        let (batch, waiters): (Vec<NewMessage>, Vec<oneshot::Sender<Stored>>) =
            std::mem::take(&mut self.pending).into_iter().unzip();
        let pool = self.pool.clone();
        let write = async move {
            db::run(&pool, move |conn| {
                Ok(db::messages::insert_batch(conn, &batch)?)
            })
            .await
        };
        ctx.spawn(write.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(rows) => {
                    for (row, waiter) in rows.into_iter().zip(waiters) {
                        let _ = waiter.send(Ok(row));
                    }
                }
                Err(e) => {
                    log::error!("cannot store chat messages: {e}");
                    for waiter in waiters {
                        let _ = waiter.send(Err(ApiError::Internal(e.to_string())));
                    }
                }
            }
            act.busy = false;
            act.flush(ctx);
        }));
    }
}

impl Actor for ChatStore {
    type Context = Context<Self>;
}

/// Stores one message (idempotent per sender and `client_msg_id`).
#[derive(Message)]
#[rtype(result = "Stored")]
pub struct StoreChat(pub NewMessage);

impl Handler<StoreChat> for ChatStore {
    type Result = ResponseFuture<Stored>;

    fn handle(&mut self, msg: StoreChat, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.pending.push((msg.0, tx));
        if !self.busy {
            self.flush(ctx);
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(ApiError::Internal("chat store stopped".to_owned())))
        })
    }
}
