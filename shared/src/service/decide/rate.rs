//! Sliding-window send limits, decided on counters as read: one hit at `now` on every counter,
//! or on none when one of them is full.

use crate::clock::Timestamp;
use crate::model::SendCounter;
use crate::ports::{Expect, Versioned, Write};

/// At most `max` hits within any `window_seconds` (a limit of 1 is a cooldown counted from the
/// last accepted hit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window_seconds: i64,
}

/// One counter and the limits its hits are held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRule {
    pub key: String,
    pub limits: Vec<Limit>,
}

impl CounterRule {
    /// Hits older than the longest window count for nothing and are dropped.
    fn retention_seconds(&self) -> i64 {
        self.limits
            .iter()
            .map(|l| l.window_seconds)
            .max()
            .unwrap_or(0)
    }
}

/// What counting one send does to the counters: the writes, and the writes that take the hits
/// back if the send is not delivered (both conditional on the counters being as read, resp. as
/// written).
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub writes: Vec<Write>,
    /// The counters after the hit, at the revision the commit gives them.
    pub after: Vec<Versioned<SendCounter>>,
}

/// Counts one hit at `now` on every counter of `rules`, whose current state is `current` (in the
/// same order; `None`: never hit). `Err(retry_at)` when a counter is full: nothing is counted,
/// and `retry_at` is the earliest time at which every counter has room again.
pub fn count(
    rules: &[CounterRule],
    current: &[Option<&Versioned<SendCounter>>],
    now: Timestamp,
) -> Result<Counted, Timestamp> {
    let mut retry_at: Option<Timestamp> = None;
    for (rule, counter) in rules.iter().zip(current) {
        let hits = live_hits(rule, counter.map(|c| &c.value), now);
        for limit in &rule.limits {
            let in_window: Vec<Timestamp> = hits
                .iter()
                .copied()
                .filter(|at| at.plus_seconds(limit.window_seconds) > now)
                .collect();
            let max = limit.max as usize;
            if in_window.len() >= max {
                // Room again when enough of the oldest hits have aged out.
                let at = in_window[in_window.len() - max].plus_seconds(limit.window_seconds);
                retry_at = Some(retry_at.map_or(at, |r| r.max(at)));
            }
        }
    }
    if let Some(retry_at) = retry_at {
        return Err(retry_at);
    }
    let mut writes = Vec::with_capacity(rules.len());
    let mut after = Vec::with_capacity(rules.len());
    for (rule, counter) in rules.iter().zip(current) {
        let mut hits = live_hits(rule, counter.map(|c| &c.value), now);
        hits.push(now);
        let value = SendCounter {
            key: rule.key.clone(),
            hits,
        };
        let (expect, rev) = match counter {
            Some(c) => (Expect::Rev(c.rev), c.rev + 1),
            None => (Expect::Absent, 1),
        };
        writes.push(Write::PutCounter {
            counter: value.clone(),
            expect,
        });
        after.push(Versioned::new(value, rev));
    }
    Ok(Counted { writes, after })
}

/// The hits of `counter` still inside the rule's longest window at `now`, oldest first.
fn live_hits(rule: &CounterRule, counter: Option<&SendCounter>, now: Timestamp) -> Vec<Timestamp> {
    let retention = rule.retention_seconds();
    let mut hits: Vec<Timestamp> = counter
        .map(|c| c.hits.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|at| at.plus_seconds(retention) > now)
        .collect();
    hits.sort();
    hits
}

/// Takes one hit at `at` back from a counter as it is now: the write that does it, conditional
/// on the counter being unchanged, or nothing when the hit is no longer there.
pub fn give_back(counter: &Versioned<SendCounter>, at: Timestamp) -> Option<Write> {
    let position = counter.value.hits.iter().position(|hit| *hit == at)?;
    let mut value = counter.value.clone();
    value.hits.remove(position);
    Some(Write::PutCounter {
        counter: value,
        expect: Expect::Rev(counter.rev),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp(1_800_000_000);

    fn rule(limits: &[(u32, i64)]) -> CounterRule {
        CounterRule {
            key: "k".into(),
            limits: limits
                .iter()
                .map(|&(max, window_seconds)| Limit {
                    max,
                    window_seconds,
                })
                .collect(),
        }
    }

    fn counter(offsets: &[i64], rev: u64) -> Versioned<SendCounter> {
        Versioned::new(
            SendCounter {
                key: "k".into(),
                hits: offsets.iter().map(|o| T.plus_seconds(*o)).collect(),
            },
            rev,
        )
    }

    /// Table: limits, earlier hits (offsets from T), the time of the new hit (offset), and
    /// `None` when it is counted or the offset at which it may be retried.
    #[test]
    fn sliding_windows_and_cooldowns() {
        // name, limits (max, window), earlier hits, the new hit, retry at (None: counted)
        type Case<'a> = (&'a str, &'a [(u32, i64)], &'a [i64], i64, Option<i64>);
        let cases: &[Case] = &[
            ("fresh counter", &[(3, 60)], &[], 0, None),
            ("room left", &[(3, 60)], &[0, 10], 20, None),
            (
                "full: room when the oldest ages out",
                &[(3, 60)],
                &[0, 10, 20],
                30,
                Some(60),
            ),
            (
                "still full just before",
                &[(3, 60)],
                &[0, 10, 20],
                59,
                Some(60),
            ),
            (
                "the oldest has aged out",
                &[(3, 60)],
                &[0, 10, 20],
                60,
                None,
            ),
            ("the window slides", &[(3, 60)], &[10, 20, 60], 61, Some(70)),
            ("cooldown", &[(1, 30)], &[0], 29, Some(30)),
            ("cooldown over", &[(1, 30)], &[0], 30, None),
            (
                "cooldown from the last accepted hit",
                &[(1, 30)],
                &[45],
                74,
                Some(75),
            ),
            (
                "cooldown and window: the cooldown binds",
                &[(1, 30), (5, 600)],
                &[0],
                10,
                Some(30),
            ),
            (
                "cooldown and window: the window binds",
                &[(1, 30), (5, 600)],
                &[0, 100, 200, 300, 400],
                500,
                Some(600),
            ),
            (
                "the later of two limits",
                &[(1, 30), (2, 600)],
                &[0, 590],
                595,
                Some(620),
            ),
            (
                "hits older than every window count nothing",
                &[(1, 30)],
                &[-1000],
                0,
                None,
            ),
        ];
        for (name, limits, earlier, at, expected) in cases {
            let rule = rule(limits);
            let current = (!earlier.is_empty()).then(|| counter(earlier, 7));
            let result = count(
                std::slice::from_ref(&rule),
                &[current.as_ref()],
                T.plus_seconds(*at),
            );
            match (result, expected) {
                (Ok(counted), None) => {
                    let Write::PutCounter { counter, expect } = &counted.writes[0] else {
                        panic!("{name}: {counted:?}")
                    };
                    assert!(counter.hits.contains(&T.plus_seconds(*at)), "{name}");
                    let retention = limits.iter().map(|l| l.1).max().unwrap();
                    assert!(
                        counter
                            .hits
                            .iter()
                            .all(|h| h.plus_seconds(retention) > T.plus_seconds(*at)),
                        "{name}: stale hits are dropped"
                    );
                    let expected_expect = if current.is_some() {
                        Expect::Rev(7)
                    } else {
                        Expect::Absent
                    };
                    assert_eq!(*expect, expected_expect, "{name}");
                }
                (Err(retry_at), Some(offset)) => {
                    assert_eq!(retry_at, T.plus_seconds(*offset), "{name}")
                }
                (result, expected) => panic!("{name}: got {result:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn counted_on_all_counters_or_none() {
        let roomy = CounterRule {
            key: "a".into(),
            limits: vec![Limit {
                max: 5,
                window_seconds: 60,
            }],
        };
        let full = CounterRule {
            key: "b".into(),
            limits: vec![Limit {
                max: 1,
                window_seconds: 60,
            }],
        };
        let full_counter = Versioned::new(
            SendCounter {
                key: "b".into(),
                hits: vec![T],
            },
            1,
        );
        assert_eq!(
            count(
                &[roomy.clone(), full.clone()],
                &[None, Some(&full_counter)],
                T.plus_seconds(1)
            ),
            Err(T.plus_seconds(60))
        );
        let counted = count(&[roomy, full], &[None, None], T).unwrap();
        assert_eq!(counted.writes.len(), 2);
        assert_eq!(counted.after[1].rev, 1);
    }

    #[test]
    fn a_hit_given_back_leaves_no_trace() {
        let cooldown = rule(&[(1, 30)]);
        let counted = count(std::slice::from_ref(&cooldown), &[None], T).unwrap();
        let after = &counted.after[0];
        let Some(Write::PutCounter { counter, expect }) = give_back(after, T) else {
            panic!("the hit is there to give back")
        };
        assert!(counter.hits.is_empty());
        assert_eq!(expect, Expect::Rev(1));
        let refunded = Versioned::new(counter, 2);
        assert!(
            count(
                std::slice::from_ref(&cooldown),
                &[Some(&refunded)],
                T.plus_seconds(1)
            )
            .is_ok()
        );
        assert_eq!(give_back(&refunded, T), None, "nothing left to give back");
    }
}
