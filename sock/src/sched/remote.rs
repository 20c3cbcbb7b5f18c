//! A loop as other OS threads see it: the wake-ups and the readiness events
//! they hand to it, and the registry that finds a loop by the index that the
//! tokens of its sockets carry.
//!
//! Several loops may share one poller (`epoll_fd`/`set_epoll_fd`); an event of
//! a shared instance goes to whichever loop waits, which may not own the
//! socket. The taker routes it here, to the owner's inbox, and wakes the owner;
//! the owner dispatches it like its own events, after the same generation
//! check, so an event of a socket closed meanwhile (whose slot or descriptor
//! may be reused) is dropped there. Each event is taken once by the kernel and
//! handed on once: none is lost, none is doubled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::ThreadId;
use crate::sys::{Event, Notifier};

/// The most loops that can exist at once and route events (the loop index
/// takes 12 bits of a token; the last value is reserved).
pub(crate) const MAX_LOOPS: u16 = 0xfff;

/// What other OS threads hand to a loop.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// Threads to wake (cross-thread wakers).
    pub(crate) threads: Vec<ThreadId>,
    /// Events of its sockets that another loop took from a shared poller.
    pub(crate) events: Vec<Event>,
}

/// The part of a loop that other OS threads reach: its inbox, a flag the loop
/// checks after each wait, and the notifier that interrupts its wait.
#[derive(Debug)]
pub(crate) struct Remote {
    /// The loop's index in the registry, in every token of its sockets
    /// ([`MAX_LOOPS`] if the registry was full: such a loop cannot share).
    pub(crate) index: u16,
    /// The OS thread the loop runs on.
    pub(crate) owner: std::thread::ThreadId,
    inbox: Mutex<Inbox>,
    pending: AtomicBool,
    pub(crate) notifier: OnceLock<Notifier>,
}

/// The live loops, by index.
static LOOPS: Mutex<Vec<Option<Weak<Remote>>>> = Mutex::new(Vec::new());

fn loops() -> std::sync::MutexGuard<'static, Vec<Option<Weak<Remote>>>> {
    LOOPS.lock().unwrap_or_else(|e| e.into_inner())
}

impl Remote {
    /// The remote part of a new loop on this OS thread, registered.
    pub(crate) fn register() -> Arc<Remote> {
        let mut table = loops();
        let index = match table.iter().position(Option::is_none) {
            Some(i) => i,
            None => table.len(),
        };
        let index = u16::try_from(index)
            .ok()
            .filter(|&i| i < MAX_LOOPS)
            .unwrap_or(MAX_LOOPS);
        let r = Arc::new(Remote {
            index,
            owner: std::thread::current().id(),
            inbox: Mutex::new(Inbox::default()),
            pending: AtomicBool::new(false),
            notifier: OnceLock::new(),
        });
        if index < MAX_LOOPS {
            let i = usize::from(index);
            if i == table.len() {
                table.push(None);
            }
            table[i] = Some(Arc::downgrade(&r));
        }
        r
    }

    /// Removes the loop from the registry (its loop is dropped).
    pub(crate) fn unregister(&self) {
        if self.index < MAX_LOOPS {
            let mut table = loops();
            if let Some(e) = table.get_mut(usize::from(self.index)) {
                *e = None;
            }
        }
    }

    /// Whether the loop can share a poller (it has a routable index).
    pub(crate) fn can_share(&self) -> bool {
        self.index < MAX_LOOPS
    }

    fn push(&self, f: impl FnOnce(&mut Inbox)) {
        f(&mut self.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        self.pending.store(true, Ordering::Release);
        // On its own OS thread the loop is busy running something, not
        // blocked in a wait, and reads its inbox before its next wait.
        if std::thread::current().id() != self.owner {
            if let Some(n) = self.notifier.get() {
                let _ = n.notify();
            }
        }
    }

    /// Queues a wake-up of thread `id` and wakes the loop.
    pub(crate) fn wake(&self, id: ThreadId) {
        self.push(|i| i.threads.push(id));
    }

    /// Takes what was handed in since the last call (into `into`, whose
    /// vectors the caller keeps for reuse).
    pub(crate) fn take(&self, into: &mut Inbox) {
        // A plain load first: the common case (nothing pending) costs no RMW.
        if self.pending.load(Ordering::Relaxed) && self.pending.swap(false, Ordering::Acquire) {
            let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
            into.threads.append(&mut inbox.threads);
            into.events.append(&mut inbox.events);
        }
    }
}

/// Hands `events` (taken from a shared poller, none of them the caller's) to
/// the loops of their tokens; events of loops that are gone are dropped.
pub(crate) fn route(events: &mut Vec<(u16, Event)>) {
    events.sort_unstable_by_key(|&(lp, _)| lp);
    let mut rest = &events[..];
    while let Some(&(lp, _)) = rest.first() {
        let n = rest.iter().take_while(|&&(l, _)| l == lp).count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        // The owner, if its loop is alive; the registry's lock is released
        // before the push (which takes the owner's inbox lock).
        let owner = loops()
            .get(usize::from(lp))
            .and_then(|w| w.as_ref()?.upgrade());
        if let Some(r) = owner {
            r.push(|i| i.events.extend(group.iter().map(|&(_, ev)| ev)));
        }
    }
    events.clear();
}
