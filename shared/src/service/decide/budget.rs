//! SMS budgets and the verification floor, above the per-identifier and per-IP limits: fixed
//! windows (this UTC hour, this UTC day) counted by tallies that a send adds to in its commit, on
//! condition that they stay within their limits (so they need no read: a full one fails the
//! commit and comes back with it); and a pause of SMS to a region where few codes sent are
//! verified, decided on the region's tallies of this day and the one before (read with the send).

use crate::clock::Timestamp;
use crate::identifiers::PhoneNumber;
use crate::ids::AppId;
use crate::model::{SmsBudgets, VerificationFloor};
use crate::ports::{Key, Write};
use crate::service::commit::Snapshot;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// How long after its window a tally is kept (the floor reads the day before).
const KEEP_AFTER_WINDOW: i64 = 2 * DAY;

/// The start of the window of length `seconds` that holds `now`.
fn window_start(now: Timestamp, seconds: i64) -> i64 {
    now.seconds().div_euclid(seconds) * seconds
}

/// The names of a region's tallies: codes sent, codes verified, in the UTC day that starts at
/// `day` (epoch seconds).
fn sent_name(region: &str, day: i64) -> String {
    format!("sms#region#{region}#d#{day}")
}

fn verified_name(region: &str, day: i64) -> String {
    format!("verified#region#{region}#d#{day}")
}

/// Where regions' tallies start (for listing them).
pub const REGION_TALLIES: &str = "sms#region#";
pub const VERIFIED_TALLIES: &str = "verified#region#";

/// A tally a send adds one to, with its limit (`None`: counted, not limited) and the end of
/// its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub name: String,
    pub limit: Option<u64>,
    pub window_end: Timestamp,
}

/// The region a number's tallies are named by (`US`, `JM`).
fn region_code(number: &PhoneNumber) -> Option<String> {
    number.region().map(|region| region.as_str().to_owned())
}

/// The tallies an SMS to `number` counts on: the app's, its region's and its prefix's, this
/// hour and this day, where a limit is set; and always its region's day (the floor reads it).
pub fn sms_budgets(budgets: &SmsBudgets, number: &PhoneNumber, now: Timestamp) -> Vec<Budget> {
    let region = region_code(number).unwrap_or_else(|| "ZZ".to_owned());
    let prefix = number.prefix(budgets.prefix_digits as usize).to_owned();
    let scopes = [
        ("app".to_owned(), budgets.app),
        (format!("region#{region}"), budgets.region),
        (format!("prefix#{prefix}"), budgets.prefix),
    ];
    let mut out = Vec::new();
    for (scope, limits) in scopes {
        for (window, seconds, limit) in [("h", HOUR, limits.hour), ("d", DAY, limits.day)] {
            let start = window_start(now, seconds);
            let always = scope.starts_with("region#") && window == "d";
            if limit.is_none() && !always {
                continue;
            }
            out.push(Budget {
                name: format!("sms#{scope}#{window}#{start}"),
                limit: limit.map(u64::from),
                window_end: Timestamp(start + seconds),
            });
        }
    }
    out
}

/// The write that counts one send on a budget (only if it stays within its limit).
pub fn count(app_id: &AppId, budget: &Budget) -> Write {
    Write::Tally {
        app_id: app_id.clone(),
        name: budget.name.clone(),
        add: 1,
        limit: budget.limit,
        expires_at: budget.window_end.plus_seconds(KEEP_AFTER_WINDOW),
    }
}

/// The write that gives a counted send back.
pub fn uncount(app_id: &AppId, budget: &Budget) -> Write {
    Write::Tally {
        app_id: app_id.clone(),
        name: budget.name.clone(),
        add: -1,
        limit: None,
        expires_at: budget.window_end.plus_seconds(KEEP_AFTER_WINDOW),
    }
}

/// A budget that a failed commit found full (its tally came back with the conflict): the time
/// its window ends.
pub fn exhausted(app_id: &AppId, budgets: &[Budget], snapshot: &Snapshot) -> Option<Timestamp> {
    budgets
        .iter()
        .filter(|b| {
            let key = Key::Tally {
                app_id: app_id.clone(),
                name: b.name.clone(),
            };
            matches!(
                (snapshot.get(&key), b.limit),
                (Some(Some(crate::ports::Record::Tally(t))), Some(limit)) if t.count >= limit
            )
        })
        .map(|b| b.window_end)
        .max()
}

/// The tallies the floor reads for `number`'s region: sent and verified, this day and the one
/// before.
pub fn floor_keys(app_id: &AppId, number: &PhoneNumber, now: Timestamp) -> Vec<Key> {
    let Some(region) = region_code(number) else {
        return Vec::new();
    };
    let today = window_start(now, DAY);
    [today, today - DAY]
        .into_iter()
        .flat_map(|day| [sent_name(&region, day), verified_name(&region, day)])
        .map(|name| Key::Tally {
            app_id: app_id.clone(),
            name,
        })
        .collect()
}

/// Codes sent to and verified in a region over the floor's window (this day and the one
/// before), from tallies as read.
pub fn region_rate(
    app_id: &AppId,
    region: &str,
    now: Timestamp,
    snapshot: &Snapshot,
) -> (u64, u64) {
    let today = window_start(now, DAY);
    let count = |name: String| match snapshot.get(&Key::Tally {
        app_id: app_id.clone(),
        name,
    }) {
        Some(Some(crate::ports::Record::Tally(t))) => t.count,
        _ => 0,
    };
    let sent = count(sent_name(region, today)) + count(sent_name(region, today - DAY));
    let verified = count(verified_name(region, today)) + count(verified_name(region, today - DAY));
    (sent, verified)
}

/// Whether the floor pauses SMS to a region with these counts.
pub fn below_floor(floor: &VerificationFloor, sent: u64, verified: u64) -> bool {
    sent >= u64::from(floor.min_sent)
        && verified.saturating_mul(100) < sent.saturating_mul(u64::from(floor.min_rate_percent))
}

/// When SMS to `number`'s region is paused by the floor: the end of this day (when the day
/// before leaves the window). `None`: not paused.
pub fn paused(
    budgets: &SmsBudgets,
    app_id: &AppId,
    number: &PhoneNumber,
    now: Timestamp,
    snapshot: &Snapshot,
) -> Option<Timestamp> {
    let floor = budgets.verification_floor?;
    let region = region_code(number)?;
    let (sent, verified) = region_rate(app_id, &region, now, snapshot);
    below_floor(&floor, sent, verified).then(|| Timestamp(window_start(now, DAY) + DAY))
}

/// The write that counts one verified code in `number`'s region (for the floor).
pub fn count_verified(app_id: &AppId, number: &PhoneNumber, now: Timestamp) -> Option<Write> {
    let region = region_code(number)?;
    let day = window_start(now, DAY);
    Some(Write::Tally {
        app_id: app_id.clone(),
        name: verified_name(&region, day),
        add: 1,
        limit: None,
        expires_at: Timestamp(day + DAY + KEEP_AFTER_WINDOW),
    })
}

/// The tallies of a region the floor reads (to forget them: a reset by the operator).
pub fn region_tally_names(region: &str, now: Timestamp) -> Vec<String> {
    let today = window_start(now, DAY);
    [today, today - DAY]
        .into_iter()
        .flat_map(|day| [sent_name(region, day), verified_name(region, day)])
        .collect()
}

/// The region and day of a region tally's name (`sms#region#US#d#<day>` or
/// `verified#region#US#d#<day>`).
pub fn parse_region_tally(name: &str) -> Option<(bool, String, i64)> {
    let (verified, rest) = if let Some(rest) = name.strip_prefix(REGION_TALLIES) {
        (false, rest)
    } else {
        (true, name.strip_prefix(VERIFIED_TALLIES)?)
    };
    let (region, day) = rest.split_once("#d#")?;
    Some((verified, region.to_owned(), day.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Tally, WindowLimits};
    use crate::ports::Record;
    use crate::random::SeededRandom;

    /// 2027-01-15T10:20:00Z: inside an hour and a day that start at known times.
    const NOW: Timestamp = Timestamp(1_800_008_400);

    fn number(text: &str) -> PhoneNumber {
        PhoneNumber::parse(text).unwrap()
    }

    #[test]
    fn an_sms_counts_on_the_app_the_region_and_the_prefix_each_hour_and_day() {
        let budgets = SmsBudgets::default();
        let names: Vec<(String, Option<u64>, i64)> =
            sms_budgets(&budgets, &number("+12025550100"), NOW)
                .into_iter()
                .map(|b| (b.name, b.limit, b.window_end.seconds() - NOW.seconds()))
                .collect();
        let hour = window_start(NOW, HOUR);
        let day = window_start(NOW, DAY);
        assert_eq!(
            names,
            vec![
                (
                    format!("sms#app#h#{hour}"),
                    Some(1_000),
                    hour + HOUR - NOW.0
                ),
                (format!("sms#app#d#{day}"), Some(10_000), day + DAY - NOW.0),
                (
                    format!("sms#region#US#h#{hour}"),
                    Some(300),
                    hour + HOUR - NOW.0
                ),
                (
                    format!("sms#region#US#d#{day}"),
                    Some(3_000),
                    day + DAY - NOW.0
                ),
                (
                    format!("sms#prefix#12025550#h#{hour}"),
                    Some(20),
                    hour + HOUR - NOW.0
                ),
                (
                    format!("sms#prefix#12025550#d#{day}"),
                    Some(100),
                    day + DAY - NOW.0
                ),
            ]
        );
        // Without limits only the region's day is counted (the floor reads it).
        let unlimited = SmsBudgets {
            app: WindowLimits {
                hour: None,
                day: None,
            },
            region: WindowLimits {
                hour: None,
                day: None,
            },
            prefix: WindowLimits {
                hour: None,
                day: None,
            },
            ..budgets
        };
        let budgets = sms_budgets(&unlimited, &number("+12025550100"), NOW);
        assert_eq!(budgets.len(), 1);
        assert_eq!(budgets[0].limit, None);
        assert!(budgets[0].name.starts_with("sms#region#US#d#"));
    }

    #[test]
    fn a_full_budget_is_told_by_the_tally_a_conflict_returned() {
        let app_id = AppId::generate(&SeededRandom::new(1));
        let budgets = sms_budgets(&SmsBudgets::default(), &number("+12025550100"), NOW);
        let mut snapshot = Snapshot::new();
        assert_eq!(exhausted(&app_id, &budgets, &snapshot), None);
        let prefix_hour = &budgets[4];
        snapshot.put(Record::Tally(Tally {
            app_id: app_id.clone(),
            name: prefix_hour.name.clone(),
            count: 20,
        }));
        assert_eq!(
            exhausted(&app_id, &budgets, &snapshot),
            Some(prefix_hour.window_end)
        );
        assert_eq!(
            count(&app_id, prefix_hour),
            Write::Tally {
                app_id: app_id.clone(),
                name: prefix_hour.name.clone(),
                add: 1,
                limit: Some(20),
                expires_at: prefix_hour.window_end.plus_seconds(KEEP_AFTER_WINDOW),
            }
        );
    }

    /// Table: sent and verified over the window, and whether the default floor (10%, at least
    /// 100 sent) pauses the region.
    #[test]
    fn the_floor_pauses_a_region_where_few_codes_are_verified() {
        let floor = SmsBudgets::default().verification_floor.unwrap();
        for (sent, verified, paused) in [
            (0, 0, false),
            (99, 0, false),
            (100, 0, true),
            (100, 9, true),
            (100, 10, false),
            (1_000, 99, true),
            (1_000, 100, false),
            (1_000, 1_000, false),
        ] {
            assert_eq!(
                below_floor(&floor, sent, verified),
                paused,
                "{sent} {verified}"
            );
        }
        let app_id = AppId::generate(&SeededRandom::new(2));
        let us = number("+12025550100");
        let keys = floor_keys(&app_id, &us, NOW);
        assert_eq!(keys.len(), 4);
        let mut snapshot = Snapshot::new();
        let today = window_start(NOW, DAY);
        for (name, count) in [
            (sent_name("US", today), 60),
            (sent_name("US", today - DAY), 60),
            (verified_name("US", today - DAY), 11),
        ] {
            snapshot.put(Record::Tally(Tally {
                app_id: app_id.clone(),
                name,
                count,
            }));
        }
        let budgets = SmsBudgets::default();
        assert_eq!(
            paused(&budgets, &app_id, &us, NOW, &snapshot),
            Some(Timestamp(today + DAY)),
            "120 sent over the two days, 11 verified: below 10%"
        );
        assert_eq!(
            paused(&budgets, &app_id, &number("+447400123456"), NOW, &snapshot),
            None,
            "another region"
        );
        let no_floor = SmsBudgets {
            verification_floor: None,
            ..budgets
        };
        assert_eq!(paused(&no_floor, &app_id, &us, NOW, &snapshot), None);
        snapshot.put(Record::Tally(Tally {
            app_id: app_id.clone(),
            name: verified_name("US", today),
            count: 2,
        }));
        assert_eq!(
            paused(&budgets, &app_id, &us, NOW, &snapshot),
            None,
            "13 of 120"
        );
        assert_eq!(
            parse_region_tally(&verified_name("US", today)),
            Some((true, "US".to_owned(), today))
        );
        assert_eq!(
            parse_region_tally(&sent_name("JM", today)),
            Some((false, "JM".to_owned(), today))
        );
        assert_eq!(parse_region_tally("sms#app#h#1"), None);
    }
}
