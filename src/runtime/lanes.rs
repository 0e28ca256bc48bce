//! Lanes: how many messages each destination has in delivery at once, so
//! that a slow destination cannot take every delivery slot and hold back
//! the mail to all the others (head-of-line blocking).
//!
//! A message takes a place in the lane of each destination it has
//! recipients at. When every one of them is full, it is parked: it waits in
//! memory, in the order it came, without a delivery slot, and goes when a
//! place in its lane is freed. When the parking is full too it is delayed by
//! a random interval of up to a minute and goes back to the schedule, as
//! KumoMTA does when an egress path's ready queue is over its `max_ready`
//! (docs.kumomta.com, make_egress_path/max_ready): memory stays bounded and
//! the scan of the schedule steps past it. Mostly that is mail handed over
//! by the sessions: the scheduler reads no more from its schedule while the
//! parking lacks room for all a scan could hand out, so a long line due for
//! one destination (a million after an outage) waits in the spool, not in
//! a churn of put-backs; retries for other destinations wait behind it
//! then, as in Postfix when its active queue is full.

use std::collections::{HashMap, VecDeque};

/// Messages parked over all destinations, at most. A parked message is its
/// schedule slot and id (about 80 bytes), not its content.
pub const PARKED_MAX: usize = 16_384;

/// A message's place in its lanes.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// It goes: it holds a place in each of these lanes until it leaves.
    Go,
    /// Every lane was full: it waits, parked in the lane of its first
    /// destination.
    Parked,
    /// Every lane and the parking were full.
    Full,
}

/// A parked message whose turn came: its schedule slot, its id and the lane
/// it waited in.
#[derive(Debug, PartialEq, Eq)]
pub struct Turn {
    pub when: u64,
    pub id: String,
    pub lane: String,
}

#[derive(Default)]
pub struct Lanes {
    /// Messages in delivery, by destination.
    busy: HashMap<String, usize>,
    /// Messages waiting for a place, by destination, in the order they came.
    parked: HashMap<String, VecDeque<(u64, String)>>,
    parked_total: usize,
}

impl Lanes {
    /// Takes a place in the lane of each of `keys` (a message's
    /// destinations), unless every lane already holds `cap` messages; then
    /// parks `(when, id)` behind the others of the first destination.
    /// `forced`: a parked message whose turn came takes its places whatever
    /// the count (the place it waited for was freed for it).
    pub fn take(&mut self, keys: &[String], cap: usize, when: u64, id: &str, forced: bool) -> Take {
        // A lane with messages parked counts as full for a newcomer, so that
        // none overtakes them in the moment between a place freed and the
        // next parked one taking it.
        let full = |k: &String| {
            self.busy.get(k).copied().unwrap_or(0) >= cap.max(1) || self.parked.contains_key(k)
        };
        if !forced && !keys.is_empty() && keys.iter().all(full) {
            if self.parked_total >= PARKED_MAX {
                return Take::Full;
            }
            self.parked
                .entry(keys[0].clone())
                .or_default()
                .push_back((when, id.to_string()));
            self.count(1, 0);
            return Take::Parked;
        }
        for k in keys {
            *self.busy.entry(k.clone()).or_insert(0) += 1;
        }
        Take::Go
    }

    /// Frees the places a delivered message held; the parked messages whose
    /// turn came, one for each place freed in a lane that has any waiting,
    /// with the lane they waited in.
    pub fn leave(&mut self, keys: &[String]) -> Vec<Turn> {
        let mut next = Vec::new();
        for k in keys {
            if let Some(n) = self.busy.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.busy.remove(k);
                }
            }
            next.extend(self.next(k));
        }
        next
    }

    /// The next message parked in `key`'s lane, taken out of the parking:
    /// for a place freed there, or passed on by a message whose turn came
    /// but which did not go after all (deleted or held meanwhile).
    pub fn next(&mut self, key: &str) -> Option<Turn> {
        let waiting = self.parked.get_mut(key)?;
        let (when, id) = waiting.pop_front()?;
        if waiting.is_empty() {
            self.parked.remove(key);
        }
        self.count(0, 1);
        Some(Turn {
            when,
            id,
            lane: key.to_string(),
        })
    }

    /// Takes `id` out of the parking (the postmaster changes it): true when
    /// it was parked; its claim passes to the caller.
    pub fn unpark(&mut self, id: &str) -> bool {
        let mut found = None;
        for (key, waiting) in self.parked.iter_mut() {
            if let Some(i) = waiting.iter().position(|(_, w)| w == id) {
                waiting.remove(i);
                found = Some(key.clone());
                break;
            }
        }
        let Some(key) = found else {
            return false;
        };
        if self.parked.get(&key).is_some_and(|w| w.is_empty()) {
            self.parked.remove(&key);
        }
        self.count(0, 1);
        true
    }

    /// Adds and takes away parked messages from the count, which
    /// `/metrics` shows as `postwarden_delivery_parked`.
    fn count(&mut self, added: usize, taken: usize) {
        self.parked_total = (self.parked_total + added).saturating_sub(taken);
        crate::metrics::lane_parked(self.parked_total);
    }

    /// Messages parked now, over all destinations.
    pub fn parked(&self) -> usize {
        self.parked_total
    }

    /// Messages in delivery to `key` now.
    pub fn busy(&self, key: &str) -> usize {
        self.busy.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    fn turn(when: u64, id: &str, lane: &str) -> Turn {
        Turn {
            when,
            id: id.into(),
            lane: lane.into(),
        }
    }

    /// A message whose turn came but did not go passes the turn on: the
    /// ones behind it are not left waiting for a place that is free.
    #[test]
    fn a_turn_not_taken_passes_to_the_next() {
        let mut lanes = Lanes::default();
        let k = keys(&["slow"]);
        lanes.take(&k, 1, 0, "a", false);
        lanes.take(&k, 1, 0, "gone", false);
        lanes.take(&k, 1, 0, "c", false);
        assert_eq!(lanes.leave(&k), vec![turn(0, "gone", "slow")]);
        // "gone" was deleted meanwhile and takes nothing: the lane is empty
        // and "c" is next.
        assert_eq!(lanes.busy("slow"), 0);
        assert_eq!(lanes.next("slow"), Some(turn(0, "c", "slow")));
        assert_eq!(lanes.next("slow"), None);
        assert_eq!(lanes.parked(), 0);
    }

    #[test]
    fn a_full_lane_parks_its_messages_and_lets_others_go() {
        let mut lanes = Lanes::default();
        let slow = keys(&["mx:slow.test"]);
        let fast = keys(&["mx:fast.test"]);
        assert_eq!(lanes.take(&slow, 2, 1, "a", false), Take::Go);
        assert_eq!(lanes.take(&slow, 2, 1, "b", false), Take::Go);
        assert_eq!(lanes.take(&slow, 2, 2, "c", false), Take::Parked);
        assert_eq!(lanes.take(&slow, 2, 3, "d", false), Take::Parked);
        // Another destination is not held back by the full one.
        assert_eq!(lanes.take(&fast, 2, 4, "e", false), Take::Go);
        assert_eq!((lanes.busy("mx:slow.test"), lanes.parked()), (2, 2));
        // Each place freed lets the next parked message go, in order; a
        // newcomer in the meantime waits behind those parked before it.
        assert_eq!(lanes.leave(&slow), vec![turn(2, "c", "mx:slow.test")]);
        assert_eq!(lanes.take(&slow, 2, 5, "late", false), Take::Parked);
        assert_eq!(lanes.take(&slow, 2, 2, "c", true), Take::Go);
        assert_eq!(lanes.leave(&fast), vec![]);
        assert_eq!(lanes.leave(&slow), vec![turn(3, "d", "mx:slow.test")]);
        assert_eq!(lanes.leave(&slow), vec![turn(5, "late", "mx:slow.test")]);
        assert_eq!(lanes.parked(), 0);
    }

    #[test]
    fn a_message_goes_while_any_of_its_destinations_has_room() {
        let mut lanes = Lanes::default();
        assert_eq!(lanes.take(&keys(&["a"]), 1, 1, "m1", false), Take::Go);
        let both = keys(&["a", "b"]);
        assert_eq!(lanes.take(&both, 1, 1, "m2", false), Take::Go);
        // It holds a place in both (one over the cap in "a").
        assert_eq!((lanes.busy("a"), lanes.busy("b")), (2, 1));
        assert_eq!(lanes.take(&both, 1, 1, "m3", false), Take::Parked);
        lanes.leave(&both);
        assert_eq!((lanes.busy("a"), lanes.busy("b")), (1, 0));
    }

    #[test]
    fn a_parked_message_can_be_taken_out() {
        let mut lanes = Lanes::default();
        let k = keys(&["slow"]);
        lanes.take(&k, 1, 0, "a", false);
        lanes.take(&k, 1, 0, "b", false);
        lanes.take(&k, 1, 0, "c", false);
        assert!(lanes.unpark("b"));
        assert!(!lanes.unpark("b"));
        assert!(!lanes.unpark("a"), "a is in delivery, not parked");
        assert_eq!(lanes.parked(), 1);
        assert_eq!(lanes.leave(&k), vec![turn(0, "c", "slow")]);
    }

    #[test]
    fn the_parking_is_bounded() {
        let mut lanes = Lanes::default();
        let k = keys(&["slow"]);
        assert_eq!(lanes.take(&k, 1, 0, "first", false), Take::Go);
        for i in 0..PARKED_MAX {
            assert_eq!(lanes.take(&k, 1, 0, &i.to_string(), false), Take::Parked);
        }
        assert_eq!(lanes.take(&k, 1, 0, "over", false), Take::Full);
        // A message to another destination still goes.
        assert_eq!(lanes.take(&keys(&["other"]), 1, 0, "x", false), Take::Go);
        assert_eq!(lanes.parked(), PARKED_MAX);
    }
}
