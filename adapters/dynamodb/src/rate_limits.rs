//! `RateLimitStore`: one item per counter key, `RATE#<key>` / `RATE`, holding the counter's
//! recent hits (`hits`, epoch seconds, oldest first), a revision `rev` and `ttl` (when the newest
//! hit leaves the window, so TTL removes idle counters).
//!
//! A sliding window cannot be checked by a condition expression (it would have to count list
//! elements newer than a cutoff), so `hit` reads the counters in one consistent snapshot,
//! decides in code, and writes every counter in one transaction conditioned on each `rev` being
//! the one read; a lost race starts again. All counters or none, and of concurrent callers
//! exactly as many as the limit allows are counted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::clock::Timestamp;
use shared::ports::{RateCounter, RateDecision, RateHit, RateLimitStore, StoreError};

use crate::DynamoStore;
use crate::db::{OPTIMISTIC_ATTEMPTS, TxOp, TxOutcome, backoff, contended};
use crate::item::{Fields, Item, malformed, n};
use crate::keys::{self, key};

const RATE_SK: &str = "RATE";

fn rate_key(counter_key: &str) -> Item {
    key(keys::rate(counter_key), RATE_SK)
}

/// A counter as read: its hits and revision (`None`: no item).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Log {
    hits: Vec<i64>,
    rev: Option<i64>,
}

fn log_from(item: Option<&Item>) -> Result<Log, StoreError> {
    let Some(item) = item else {
        return Ok(Log::default());
    };
    let f = Fields::new(item, "rate counter");
    let mut hits = f
        .list("hits")?
        .iter()
        .map(|value| match value {
            AttributeValue::N(text) => text.parse().map_err(|_| malformed("rate counter", "hits")),
            _ => Err(malformed("rate counter", "hits")),
        })
        .collect::<Result<Vec<i64>, _>>()?;
    hits.sort_unstable();
    Ok(Log {
        hits,
        rev: Some(f.i64("rev")?),
    })
}

/// The hits still inside a window of `window_seconds` at `now` (a hit at `t` counts while
/// `t + window > now`), oldest first.
fn live_hits(hits: &[i64], window_seconds: i64, now: i64) -> Vec<i64> {
    hits.iter()
        .copied()
        .filter(|at| at.saturating_add(window_seconds) > now)
        .collect()
}

/// When the counter has room again, if it is full at `now`: when enough of the oldest live
/// hits have aged out.
fn full_until(live: &[i64], counter: &RateCounter, now: i64) -> Option<i64> {
    let limit = usize::try_from(counter.limit).unwrap_or(usize::MAX);
    if live.len() < limit {
        return None;
    }
    Some(match limit {
        // A counter that allows nothing: never room, answered as a full window from now.
        0 => now.saturating_add(counter.window_seconds),
        _ => live[live.len() - limit].saturating_add(counter.window_seconds),
    })
}

/// The decision for `counters` on the logs read (by key), and the new hits of each key.
fn decide(
    counters: &[RateCounter],
    logs: &BTreeMap<&str, Log>,
    now: i64,
) -> Result<BTreeMap<String, (Vec<i64>, i64)>, Timestamp> {
    let mut retry_at: Option<i64> = None;
    for counter in counters {
        let hits = logs
            .get(counter.key.as_str())
            .map(|log| log.hits.as_slice())
            .unwrap_or_default();
        let live = live_hits(hits, counter.window_seconds, now);
        if let Some(at) = full_until(&live, counter, now) {
            retry_at = Some(retry_at.map_or(at, |r| r.max(at)));
        }
    }
    if let Some(retry_at) = retry_at {
        return Err(Timestamp(retry_at));
    }
    // New hits per key: the live ones (by the longest window among its counters) plus one per
    // counter; `ttl` when the newest leaves that window.
    let mut next: BTreeMap<String, (Vec<i64>, i64)> = BTreeMap::new();
    for counter in counters {
        let entry = next
            .entry(counter.key.clone())
            .or_insert_with(|| (Vec::new(), 0));
        entry.1 = entry.1.max(counter.window_seconds);
    }
    for (key, (hits, window)) in next.iter_mut() {
        let old = logs
            .get(key.as_str())
            .map(|log| log.hits.as_slice())
            .unwrap_or_default();
        *hits = live_hits(old, *window, now);
        let added = counters.iter().filter(|c| &c.key == key).count();
        hits.extend(std::iter::repeat_n(now, added));
        *window = hits
            .iter()
            .copied()
            .max()
            .unwrap_or(now)
            .saturating_add(*window);
    }
    Ok(next)
}

fn with_rev(op: TxOp, rev: Option<i64>) -> TxOp {
    match rev {
        Some(rev) => op
            .when("#rev = :rev")
            .name("#rev", "rev")
            .value(":rev", n(rev)),
        None => op.when("attribute_not_exists(#pk)").name("#pk", keys::PK),
    }
}

fn counter_item(counter_key: &str, hits: &[i64], rev: i64, ttl: i64) -> Item {
    let mut item = rate_key(counter_key);
    item.insert(
        "hits".to_owned(),
        AttributeValue::L(hits.iter().map(|at| n(*at)).collect()),
    );
    item.insert("rev".to_owned(), n(rev));
    item.insert(keys::TTL.to_owned(), n(ttl));
    item
}

impl DynamoStore {
    /// The counters named by `keys`, in one consistent snapshot.
    async fn read_logs<'k>(&self, keys: &[&'k str]) -> Result<BTreeMap<&'k str, Log>, StoreError> {
        let items = self
            .get_all(keys.iter().map(|k| rate_key(k)).collect())
            .await?;
        keys.iter()
            .zip(items.iter())
            .map(|(k, item)| Ok((*k, log_from(item.as_ref())?)))
            .collect()
    }
}

#[async_trait]
impl RateLimitStore for DynamoStore {
    async fn hit(
        &self,
        counters: &[RateCounter],
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        if counters.is_empty() {
            return Ok(RateDecision::Counted(Vec::new()));
        }
        let mut unique: Vec<&str> = counters.iter().map(|c| c.key.as_str()).collect();
        unique.sort_unstable();
        unique.dedup();
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            let logs = self.read_logs(&unique).await?;
            let next = match decide(counters, &logs, now.0) {
                Ok(next) => next,
                Err(retry_at) => return Ok(RateDecision::Limited { retry_at }),
            };
            let ops = next
                .iter()
                .map(|(counter_key, (hits, ttl))| {
                    let rev = logs.get(counter_key.as_str()).and_then(|log| log.rev);
                    with_rev(
                        TxOp::put(counter_item(counter_key, hits, rev.unwrap_or(0) + 1, *ttl)),
                        rev,
                    )
                })
                .collect();
            if self.transact(ops).await? == TxOutcome::Committed {
                return Ok(RateDecision::Counted(
                    counters
                        .iter()
                        .map(|c| RateHit {
                            key: c.key.clone(),
                            at: now,
                        })
                        .collect(),
                ));
            }
            backoff(attempt).await;
        }
        Err(contended("rate limit hit"))
    }

    async fn give_back(&self, hits: &[RateHit]) -> Result<(), StoreError> {
        let mut unique: Vec<&str> = hits.iter().map(|h| h.key.as_str()).collect();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() {
            return Ok(());
        }
        for attempt in 0..OPTIMISTIC_ATTEMPTS {
            let logs = self.read_logs(&unique).await?;
            let mut ops = Vec::new();
            for (counter_key, log) in &logs {
                let Some(rev) = log.rev else {
                    continue; // never hit (or aged out): nothing to take back
                };
                let mut remaining = log.hits.clone();
                for hit in hits.iter().filter(|h| h.key == *counter_key) {
                    if let Some(position) = remaining.iter().position(|at| *at == hit.at.0) {
                        remaining.remove(position);
                    }
                }
                if remaining.len() == log.hits.len() {
                    continue;
                }
                let op = if remaining.is_empty() {
                    TxOp::delete(rate_key(counter_key))
                } else {
                    TxOp::update(rate_key(counter_key), "SET #hits = :hits, #rev = :next")
                        .name("#hits", "hits")
                        .value(
                            ":hits",
                            AttributeValue::L(remaining.iter().map(|at| n(*at)).collect()),
                        )
                        .value(":next", n(rev + 1))
                };
                ops.push(with_rev(op, Some(rev)));
            }
            if ops.is_empty() || self.transact(ops).await? == TxOutcome::Committed {
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(contended("rate limit give_back"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(key: &str, limit: u32, window_seconds: i64) -> RateCounter {
        RateCounter {
            key: key.to_owned(),
            limit,
            window_seconds,
        }
    }

    fn logs(entries: &[(&'static str, &[i64])]) -> BTreeMap<&'static str, Log> {
        entries
            .iter()
            .map(|(k, hits)| {
                (
                    *k,
                    Log {
                        hits: hits.to_vec(),
                        rev: Some(1),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn sliding_window_refuses_when_full_until_the_oldest_needed_hit_ages_out() {
        let c = counter("a", 3, 60);
        let full = logs(&[("a", &[100, 110, 120])]);
        assert_eq!(
            decide(std::slice::from_ref(&c), &full, 130),
            Err(Timestamp(160))
        );
        assert_eq!(
            decide(std::slice::from_ref(&c), &full, 159),
            Err(Timestamp(160))
        );
        let next = decide(&[c], &full, 160).expect("room at retry_at");
        assert_eq!(
            next["a"].0,
            vec![110, 120, 160],
            "the aged-out hit is pruned"
        );
        assert_eq!(
            next["a"].1, 220,
            "ttl when the newest hit leaves the window"
        );
    }

    #[test]
    fn all_counters_or_none_and_latest_retry_wins() {
        let roomy = counter("roomy", 5, 60);
        let full = counter("full", 1, 60);
        let cooling = counter("cooling", 1, 90);
        let read = logs(&[("full", &[100]), ("cooling", &[100])]);
        assert_eq!(
            decide(&[roomy.clone(), full.clone(), cooling], &read, 101),
            Err(Timestamp(190))
        );
        let next = decide(&[roomy, counter("fresh", 2, 60)], &read, 101).expect("counted");
        assert_eq!(next.len(), 2);
        assert_eq!(next["roomy"].0, vec![101]);
    }

    #[test]
    fn limit_zero_never_counts() {
        assert_eq!(
            decide(&[counter("z", 0, 30)], &BTreeMap::new(), 10),
            Err(Timestamp(40))
        );
    }

    #[test]
    fn logs_parse_sorted_and_reject_non_numbers() {
        let mut item = counter_item("k", &[30, 10, 20], 4, 90);
        let log = log_from(Some(&item)).expect("parse");
        assert_eq!(
            log,
            Log {
                hits: vec![10, 20, 30],
                rev: Some(4)
            }
        );
        assert_eq!(log_from(None).expect("absent"), Log::default());
        item.insert(
            "hits".to_owned(),
            AttributeValue::L(vec![AttributeValue::S("x".to_owned())]),
        );
        assert!(log_from(Some(&item)).is_err());
    }
}
