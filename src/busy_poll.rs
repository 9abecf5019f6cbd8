//! Busy polling (`--busy-poll-us`): a worker thread that has just handled client traffic
//! keeps polling its sockets for a short window instead of going to sleep, so the next frame
//! (typically the answer to the one just relayed) is picked up without the thread, and on a
//! virtual machine the vCPU, being woken from idle.
//!
//! Each wake-up from idle costs tens of microseconds on a VM (an inter-processor interrupt to
//! a halted vCPU and the host's scheduler) and more in the tail: in an open-loop relay at
//! 2,000 signals/s the server is idle 85 % of the time and those wake-ups, not the work, are
//! most of a round trip (docs/benchmarks.md). Linux offers `SO_BUSY_POLL` for the same trade,
//! but only for NIC queues, not for loopback or for an event loop; this is the event loop's
//! version.
//!
//! The cost is CPU: a worker spins for up to the window after every inbound frame, so under
//! steady traffic one frame per window keeps its core 100 % busy. Off by default (0); for a
//! server with a dedicated core where latency matters more than idle CPU.
//!
//! How it spins: one task per worker thread (started on the thread's first frame) yields
//! with [`tokio::task::yield_now`] while the window is open. A yielding task makes tokio's
//! scheduler poll the I/O driver with a zero timeout (`epoll_wait(…, 0)`) instead of blocking
//! in it, so sockets that became readable are handled within a loop turn. When the window
//! closes the task sleeps until the next frame reopens it.

use std::{
    cell::{Cell, RefCell},
    future::poll_fn,
    rc::Rc,
    task::{Poll, Waker},
    time::{Duration, Instant},
};

/// One worker thread's spinner.
struct Spinner {
    /// The window is open until then.
    until: Cell<Instant>,
    /// The spinner task's waker while it sleeps (the window closed).
    asleep: Cell<Option<Waker>>,
}

thread_local! {
    /// This thread's spinner, once it has seen a frame with busy polling on.
    static SPINNER: RefCell<Option<Rc<Spinner>>> = const { RefCell::new(None) };
}

/// Client traffic was just handled on this (worker) thread: keep polling for `window`. A
/// zero window (busy polling off) does nothing, not even read the clock. Must be called on
/// an actix/tokio worker thread (inside its runtime), which is where sessions handle their
/// frames.
pub(crate) fn traffic(window: Duration) {
    if window.is_zero() {
        return;
    }
    let now = Instant::now();
    SPINNER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let spinner = slot.get_or_insert_with(|| {
            let spinner = Rc::new(Spinner {
                until: Cell::new(now),
                asleep: Cell::new(None),
            });
            actix_rt::spawn(spin(Rc::clone(&spinner)));
            spinner
        });
        spinner.until.set(now + window);
        if let Some(waker) = spinner.asleep.take() {
            waker.wake();
        }
    });
}

/// The spinner task: yields while the window is open, sleeps while it is closed.
async fn spin(spinner: Rc<Spinner>) {
    loop {
        if Instant::now() < spinner.until.get() {
            tokio::task::yield_now().await;
            continue;
        }
        let spinner = &spinner;
        poll_fn(|cx| {
            if Instant::now() < spinner.until.get() {
                return Poll::Ready(());
            }
            spinner.asleep.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU time this thread has used (user + system), from `/proc/thread-self/stat`.
    fn thread_cpu() -> Duration {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs");
        // Fields after the command name (which is in parentheses and may hold spaces).
        let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
            .split(' ')
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
    }

    fn asleep() -> bool {
        SPINNER.with(|s| {
            let s = s.borrow();
            let s = s.as_ref().expect("the spinner has started");
            let waker = s.asleep.take();
            let asleep = waker.is_some();
            s.asleep.set(waker);
            asleep
        })
    }

    /// While the window is open the worker thread keeps running (it polls instead of
    /// sleeping); once it closes the thread sleeps again, and new traffic reopens it.
    #[actix_rt::test]
    async fn the_worker_polls_while_the_window_is_open_and_sleeps_after() {
        const WINDOW: Duration = Duration::from_millis(300);
        traffic(Duration::ZERO);
        assert!(
            SPINNER.with(|s| s.borrow().is_none()),
            "a zero window starts nothing"
        );

        let before = thread_cpu();
        traffic(WINDOW);
        tokio::time::sleep(WINDOW).await;
        let spinning = thread_cpu() - before;

        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(asleep(), "the spinner still runs after its window closed");
        let before = thread_cpu();
        tokio::time::sleep(WINDOW).await;
        let sleeping = thread_cpu() - before;

        // Generous bounds: other tests share the machine's cores.
        assert!(
            spinning >= WINDOW / 10,
            "the thread used only {spinning:?} of CPU in a {WINDOW:?} window"
        );
        assert!(
            sleeping < WINDOW / 10,
            "the thread used {sleeping:?} of CPU after its window closed"
        );

        traffic(WINDOW);
        tokio::task::yield_now().await;
        assert!(!asleep(), "new traffic does not wake the spinner");
    }
}
