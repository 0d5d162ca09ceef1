//! Log-in attempts, limited per account and per client IP within a sliding
//! window: a guesser gets a 429 with `Retry-After`, and so does anyone
//! hammering many accounts from one address. In memory, per replica: the
//! limits hold per process (an attacker spreading over N replicas gets N
//! times the budget, still a handful of guesses per quarter hour).

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The window attempts are counted in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed log-ins per account per window.
pub const PER_ACCOUNT: usize = 5;
/// Log-in attempts per IP per window (any outcome).
pub const PER_IP: usize = 20;
/// Keys tracked at most; beyond it the oldest entries are dropped.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct LoginLimiter {
    accounts: Mutex<HashMap<String, VecDeque<Instant>>>,
    ips: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

/// How long until the oldest attempt leaves the window.
fn wait(times: &VecDeque<Instant>, now: Instant) -> Duration {
    times.front().map_or(Duration::ZERO, |t| {
        WINDOW.saturating_sub(now.duration_since(*t))
    })
}

fn check<K: std::hash::Hash + Eq + Clone>(
    map: &Mutex<HashMap<K, VecDeque<Instant>>>,
    key: &K,
    limit: usize,
    now: Instant,
) -> Result<(), Duration> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    let Some(times) = map.get_mut(key) else {
        return Ok(());
    };
    prune(times, now);
    if times.len() >= limit {
        Err(wait(times, now).max(Duration::from_secs(1)))
    } else {
        Ok(())
    }
}

fn record<K: std::hash::Hash + Eq + Clone>(
    map: &Mutex<HashMap<K, VecDeque<Instant>>>,
    key: K,
    now: Instant,
) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_KEYS {
        map.retain(|_, times| {
            prune(times, now);
            !times.is_empty()
        });
    }
    map.entry(key).or_default().push_back(now);
}

impl LoginLimiter {
    /// Before checking the password: `Err(retry_after)` when either limit is reached.
    pub fn admit(&self, account: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        if let Some(ip) = ip {
            check(&self.ips, &ip, PER_IP, now)?;
            record(&self.ips, ip, now);
        }
        check(
            &self.accounts,
            &account.trim().to_lowercase(),
            PER_ACCOUNT,
            now,
        )
    }

    /// After a wrong password.
    pub fn failed(&self, account: &str) {
        record(
            &self.accounts,
            account.trim().to_lowercase(),
            Instant::now(),
        );
    }

    /// After a successful log-in: the account's failures are forgotten.
    pub fn succeeded(&self, account: &str) {
        let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&account.trim().to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_locked_after_its_failures_and_others_are_not() {
        let limiter = LoginLimiter::default();
        for _ in 0..PER_ACCOUNT {
            assert!(limiter.admit("A@x.org", None).is_ok());
            limiter.failed("a@x.org");
        }
        let wait = limiter.admit("a@x.org ", None).unwrap_err();
        assert!(wait > Duration::from_secs(60) && wait <= WINDOW, "{wait:?}");
        assert!(limiter.admit("b@x.org", None).is_ok());
    }

    #[test]
    fn an_ip_is_limited_across_accounts() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..PER_IP {
            assert!(limiter.admit(&format!("u{i}@x.org"), Some(ip)).is_ok());
        }
        assert!(limiter.admit("new@x.org", Some(ip)).is_err());
        assert!(limiter
            .admit("new@x.org", Some("192.0.2.8".parse().unwrap()))
            .is_ok());
    }

    #[test]
    fn success_clears_an_accounts_failures() {
        let limiter = LoginLimiter::default();
        for _ in 0..PER_ACCOUNT - 1 {
            limiter.failed("a@x.org");
        }
        limiter.succeeded("a@x.org");
        limiter.failed("a@x.org");
        assert!(limiter.admit("a@x.org", None).is_ok());
    }
}
