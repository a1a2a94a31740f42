//! Per-recipient rate limits: a token bucket of `messages` tokens refilled
//! over `per`. Within the limit every notification is its own message; a
//! burst beyond it sends what the bucket allows, the last of them a digest
//! of everything else ("... and 37 more incidents"), so a rack outage is a
//! few messages, not a flood. Pure: time is an argument.

use std::collections::HashMap;

use crate::channels::config::RateLimit;

/// What to send: one item, or several folded into a digest.
#[derive(Debug, PartialEq, Eq)]
pub enum Unit<T> {
    /// One item, one message.
    Single(T),
    /// Several items in one message (first one first).
    Digest(Vec<T>),
}

/// The result of planning one batch.
#[derive(Debug)]
pub struct Plan<T> {
    /// What to send now.
    pub units: Vec<Unit<T>>,
    /// When a recipient whose items were all held back gets its next token
    /// (Unix milliseconds); None when nothing was held back.
    pub wait_until: Option<i64>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

/// The buckets of one channel, one per recipient.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Option<RateLimit>,
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    /// A limiter; `None` lets everything through one by one.
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit,
            buckets: HashMap::new(),
        }
    }

    /// Plans the due items (recipient, item), oldest first, and takes the
    /// tokens the plan uses.
    pub fn plan<T>(&mut self, items: Vec<(String, T)>, now_ms: i64) -> Plan<T> {
        let Some(limit) = self.limit else {
            return Plan {
                units: items.into_iter().map(|(_, t)| Unit::Single(t)).collect(),
                wait_until: None,
            };
        };
        let capacity = f64::from(limit.messages);
        let per_ms = (limit.per.as_secs_f64() * 1000.0).max(1.0);
        let refill_per_ms = capacity / per_ms;

        // Group by recipient, keeping the order of first appearance.
        let mut groups: Vec<(String, Vec<T>)> = Vec::new();
        for (recipient, item) in items {
            match groups.iter_mut().find(|(r, _)| *r == recipient) {
                Some((_, g)) => g.push(item),
                None => groups.push((recipient, vec![item])),
            }
        }

        let mut plan = Plan {
            units: Vec::new(),
            wait_until: None,
        };
        for (recipient, mut group) in groups {
            let bucket = self.buckets.entry(recipient).or_insert(Bucket {
                tokens: capacity,
                last_ms: now_ms,
            });
            let elapsed = (now_ms - bucket.last_ms).max(0) as f64;
            bucket.tokens = (bucket.tokens + elapsed * refill_per_ms).min(capacity);
            bucket.last_ms = now_ms;
            let available = bucket.tokens.floor() as usize;
            if available == 0 {
                let until = now_ms + ((1.0 - bucket.tokens) / refill_per_ms).ceil() as i64;
                plan.wait_until = Some(plan.wait_until.map_or(until, |w: i64| w.min(until)));
                continue;
            }
            if group.len() <= available {
                bucket.tokens -= group.len() as f64;
                plan.units.extend(group.into_iter().map(Unit::Single));
            } else {
                bucket.tokens -= available as f64;
                let rest = group.split_off(available - 1);
                plan.units.extend(group.into_iter().map(Unit::Single));
                plan.units.push(Unit::Digest(rest));
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(messages: u32, per_secs: u64) -> RateLimiter {
        RateLimiter::new(Some(RateLimit {
            messages,
            per: Duration::from_secs(per_secs),
        }))
    }

    fn items(recipient: &str, n: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (recipient.to_owned(), i)).collect()
    }

    #[test]
    fn within_the_limit_everything_goes_alone() {
        let mut l = limiter(5, 60);
        let plan = l.plan(items("a", 3), 0);
        assert_eq!(
            plan.units,
            [Unit::Single(0), Unit::Single(1), Unit::Single(2)]
        );
    }

    #[test]
    fn a_burst_becomes_singles_and_one_digest() {
        let mut l = limiter(3, 60);
        let plan = l.plan(items("a", 40), 0);
        assert_eq!(plan.units.len(), 3);
        assert_eq!(plan.units[0], Unit::Single(0));
        assert_eq!(plan.units[1], Unit::Single(1));
        match &plan.units[2] {
            Unit::Digest(rest) => assert_eq!(rest.len(), 38),
            other => panic!("expected a digest, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_bucket_holds_back_until_the_next_token() {
        let mut l = limiter(2, 60);
        l.plan(items("a", 2), 0);
        let plan = l.plan(items("a", 5), 1_000);
        assert!(plan.units.is_empty());
        // One token per 30 s; 1 s has passed.
        assert_eq!(plan.wait_until, Some(30_000));
        let plan = l.plan(items("a", 5), 30_000);
        assert_eq!(plan.units, [Unit::Digest(vec![0, 1, 2, 3, 4])]);
    }

    #[test]
    fn recipients_have_their_own_buckets() {
        let mut l = limiter(1, 60);
        let mut both = items("a", 2);
        both.extend(items("b", 1));
        let plan = l.plan(both, 0);
        assert_eq!(plan.units, [Unit::Digest(vec![0, 1]), Unit::Single(0)]);
    }

    #[test]
    fn no_limit_means_no_digest() {
        let mut l = RateLimiter::new(None);
        assert_eq!(l.plan(items("a", 100), 0).units.len(), 100);
    }
}
