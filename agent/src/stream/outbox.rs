//! The agent's outbox: events and telemetry numbered in order, kept until
//! the watchdog acknowledges them, resent after a reconnect oldest first.
//! It is bounded; when full the oldest record falls off and is counted by
//! kind, so a loss is never silent (the watchdog also sees the gap in
//! sequence numbers).

use std::{
    collections::VecDeque,
    sync::{Mutex, atomic::AtomicU64},
};

use hyperwatch_proto::v1::{self, agent_message::Body};
use tokio::sync::Notify;

/// A buffered record.
#[derive(Clone, Debug)]
enum Record {
    Event(v1::Event),
    Telemetry(v1::Telemetry),
}

impl Record {
    fn acked(&self, events_through: u64, telemetry_through: u64) -> bool {
        match self {
            Record::Event(e) => e.seq <= events_through,
            Record::Telemetry(t) => t.seq <= telemetry_through,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    records: VecDeque<Record>,
    /// Records at the front already sent on the current stream.
    sent: usize,
    last_event_seq: u64,
    last_telemetry_seq: u64,
}

/// What fell off the bound, by kind.
#[derive(Debug, Default)]
pub struct Dropped {
    pub events: AtomicU64,
    pub telemetry: AtomicU64,
}

/// The bounded, acknowledged buffer.
#[derive(Debug)]
pub struct Outbox {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Wakes the sender when a record arrives.
    pub ready: Notify,
    pub dropped: Dropped,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::default(),
            capacity: capacity.max(1),
            ready: Notify::new(),
            dropped: Dropped::default(),
        }
    }

    /// Numbers and queues an event; returns its sequence number.
    pub fn push_event(&self, mut event: v1::Event) -> u64 {
        let seq = {
            let mut inner = self.inner.lock().expect("outbox lock");
            inner.last_event_seq += 1;
            event.seq = inner.last_event_seq;
            self.push(&mut inner, Record::Event(event));
            inner.last_event_seq
        };
        self.ready.notify_one();
        seq
    }

    /// Numbers and queues a telemetry summary; returns its sequence number.
    pub fn push_telemetry(&self, mut telemetry: v1::Telemetry) -> u64 {
        let seq = {
            let mut inner = self.inner.lock().expect("outbox lock");
            inner.last_telemetry_seq += 1;
            telemetry.seq = inner.last_telemetry_seq;
            self.push(&mut inner, Record::Telemetry(telemetry));
            inner.last_telemetry_seq
        };
        self.ready.notify_one();
        seq
    }

    fn push(&self, inner: &mut Inner, record: Record) {
        use std::sync::atomic::Ordering::Relaxed;
        inner.records.push_back(record);
        while inner.records.len() > self.capacity {
            match inner.records.pop_front() {
                Some(Record::Event(_)) => self.dropped.events.fetch_add(1, Relaxed),
                Some(Record::Telemetry(_)) => self.dropped.telemetry.fetch_add(1, Relaxed),
                None => break,
            };
            inner.sent = inner.sent.saturating_sub(1);
        }
    }

    /// The next record not yet sent on this stream, as a message.
    pub fn next_unsent(&self) -> Option<v1::AgentMessage> {
        let mut inner = self.inner.lock().expect("outbox lock");
        let record = inner.records.get(inner.sent)?.clone();
        inner.sent += 1;
        Some(v1::AgentMessage {
            body: Some(match record {
                Record::Event(e) => Body::Event(e),
                Record::Telemetry(t) => Body::Telemetry(t),
            }),
        })
    }

    /// The watchdog holds everything up to these numbers: free it.
    pub fn ack(&self, events_through: u64, telemetry_through: u64) {
        let mut inner = self.inner.lock().expect("outbox lock");
        while inner
            .records
            .front()
            .is_some_and(|r| r.acked(events_through, telemetry_through))
        {
            inner.records.pop_front();
            inner.sent = inner.sent.saturating_sub(1);
        }
    }

    /// A new stream: drop what the watchdog says it holds, and send the
    /// rest again from the oldest.
    pub fn resume(&self, events_through: u64, telemetry_through: u64) {
        let mut inner = self.inner.lock().expect("outbox lock");
        inner
            .records
            .retain(|r| !r.acked(events_through, telemetry_through));
        inner.sent = 0;
    }

    /// Records waiting for an ack.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("outbox lock").records.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;

    fn event() -> v1::Event {
        v1::Event::default()
    }

    fn seqs(o: &Outbox) -> Vec<(char, u64)> {
        std::iter::from_fn(|| o.next_unsent())
            .map(|m| match m.body {
                Some(Body::Event(e)) => ('e', e.seq),
                Some(Body::Telemetry(t)) => ('t', t.seq),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn numbers_in_order_and_resends_the_unacked_after_a_reconnect() {
        let o = Outbox::new(100);
        o.push_event(event());
        o.push_telemetry(v1::Telemetry::default());
        o.push_event(event());
        assert_eq!(seqs(&o), vec![('e', 1), ('t', 1), ('e', 2)]);
        assert_eq!(seqs(&o), vec![], "sent once per stream");
        o.ack(1, 0);
        assert_eq!(o.len(), 2);
        // Reconnect: the watchdog already holds telemetry 1.
        o.resume(1, 1);
        assert_eq!(seqs(&o), vec![('e', 2)]);
        o.ack(2, 1);
        assert!(o.is_empty());
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_by_kind() {
        let o = Outbox::new(3);
        o.push_telemetry(v1::Telemetry::default());
        for _ in 0..4 {
            o.push_event(event());
        }
        assert_eq!(o.dropped.telemetry.load(Relaxed), 1);
        assert_eq!(o.dropped.events.load(Relaxed), 1);
        assert_eq!(seqs(&o), vec![('e', 2), ('e', 3), ('e', 4)]);
    }

    #[test]
    fn dropping_keeps_the_sent_cursor_on_the_right_record() {
        let o = Outbox::new(2);
        o.push_event(event());
        o.push_event(event());
        assert_eq!(seqs(&o).len(), 2);
        o.push_event(event());
        assert_eq!(seqs(&o), vec![('e', 3)], "only the new one is unsent");
    }
}
