//! `basic_auth_users`: `Authorization: Basic` checked against bcrypt hashes, without
//! letting a flood of wrong passwords burn the CPU that scrapes need, or the lookup's
//! timing tell which users exist.
//!
//! A check is split in two, so the async threads never run bcrypt:
//! [`Authenticator::check`] is cheap (header decoding, a constant-time user lookup, a
//! cache lookup) and either decides or hands back a [`Verification`], whose
//! [`run`](Verification::run) does the bcrypt work, on a thread of the caller's that is
//! not an async worker (the server's lowest-priority bcrypt thread).
//!
//! As exporter-toolkit does (`web/handler.go`, `web/cache.go`):
//!
//! - An unknown user is verified against a real hash all the same and then refused.
//!   exporter-toolkit uses a fixed hash of cost 10; we use the configured hash of the
//!   highest cost, so the costliest users are not told apart from unknown ones. Users of
//!   a lower cost answer faster: give every user the same cost (docs/security.md).
//! - Results are cached, keyed by user, hash and password together (exporter-toolkit
//!   keys by their hex concatenation; we key by a SHA-256 of them, so no password is
//!   kept in memory), 100 entries. A changed hash never matches an old entry.
//! - bcrypt runs one at a time (exporter-toolkit's `bcryptMtx`): a flood of new wrong
//!   passwords costs at most one core.
//!
//! Differences, both for floods: successes and failures are cached apart (oldest
//! evicted first), so a flood of distinct wrong passwords cannot push the scrapers'
//! credentials out and make every scrape wait for bcrypt; and at most
//! [`MAX_WAITING`] verifications wait for bcrypt at once ([`MAX_WAITING_PER_PEER`] of
//! one client address), beyond which
//! [`Check::Busy`] is answered without any bcrypt (the server answers it as
//! `429 Too Many Requests`, never as success).
//!
//! Constant time: the user name is compared by its SHA-256 with every configured
//! user's, with `subtle`'s constant-time equality and selection, so the lookup takes the
//! same time whoever asks; bcrypt's own `verify` compares the hashes in constant time.

use super::Problem;
use super::error::Fault;
use base64::Engine as _;
use ring::digest::{SHA256, digest};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Entries of each cache (successes, failures): exporter-toolkit's `cacheSize`.
pub const CACHE_SIZE: usize = 100;

/// Verifications that may wait for bcrypt at once; more are answered [`Check::Busy`].
pub const MAX_WAITING: usize = 8;

/// Of those, verifications from one client address: one flooding address cannot take
/// every place, so new credentials from elsewhere (Prometheus after a restart or a
/// password rotation) still reach bcrypt.
pub const MAX_WAITING_PER_PEER: usize = 2;

/// The header's scheme, compared without case (as Go's `Request.BasicAuth`).
const SCHEME: &[u8] = b"basic ";

/// Checks credentials against the configured users.
#[derive(Debug)]
pub struct Authenticator {
    /// The users, in name order.
    users: Vec<User>,
    /// The hash unknown users are verified against: the costliest configured one.
    dummy: Arc<str>,
    /// What was verified, by [`cache_key`].
    cache: Mutex<Cache>,
    /// Held while bcrypt runs: one verification at a time.
    bcrypt: Mutex<()>,
    /// Verifications handed out and not yet finished.
    waiting: AtomicUsize,
    /// The same by client address (only addresses with one pending).
    waiting_by_peer: Mutex<HashMap<IpAddr, usize>>,
}

#[derive(Debug)]
struct User {
    /// SHA-256 of the name: fixed length, for the constant-time comparison.
    name_digest: [u8; 32],
    /// The bcrypt hash.
    hash: Arc<str>,
}

/// What [`Authenticator::check`] decided.
#[derive(Debug)]
pub enum Check {
    /// Good credentials (known from the cache).
    Allowed,
    /// No credentials, malformed ones, or ones known to be wrong: answer 401 with
    /// `WWW-Authenticate: Basic`.
    Denied,
    /// Not known yet: run the verification (off the async threads) to decide.
    Verify(Verification),
    /// Too many verifications are waiting for bcrypt: answer 429 without verifying.
    Busy,
}

/// A pending bcrypt verification, owning what it needs so it can move to a blocking
/// thread.
#[derive(Debug)]
pub struct Verification {
    auth: Arc<Authenticator>,
    key: [u8; 32],
    hash: Arc<str>,
    password: Vec<u8>,
    /// Whether the user exists (else `hash` is the dummy and the answer is no).
    known: bool,
    /// The client address it counts against, if any.
    peer: Option<IpAddr>,
}

impl Authenticator {
    /// Users from `basic_auth_users`, every hash checked.
    ///
    /// # Errors
    /// `basic_auth_users.<user>` and why its hash is not a bcrypt hash.
    pub(crate) fn new(users: &BTreeMap<String, Option<String>>) -> Result<Authenticator, Fault> {
        let mut out = Vec::new();
        let mut dummy: Option<(u32, Arc<str>)> = None;
        for (name, hash) in users {
            let key = format!("basic_auth_users.{name}");
            let hash = hash.as_deref().unwrap_or("");
            let cost = hash_cost(hash).map_err(|m| (key.clone(), Problem::BadHash(m)))?;
            let hash: Arc<str> = Arc::from(hash);
            if dummy.as_ref().is_none_or(|(c, _)| cost > *c) {
                dummy = Some((cost, hash.clone()));
            }
            out.push(User {
                name_digest: sha256(name.as_bytes()),
                hash,
            });
        }
        let Some((_, dummy)) = dummy else {
            return Err((
                "basic_auth_users".to_owned(),
                Problem::Refused("no users".into()),
            ));
        };
        Ok(Authenticator {
            users: out,
            dummy,
            cache: Mutex::new(Cache::default()),
            bcrypt: Mutex::new(()),
            waiting: AtomicUsize::new(0),
            waiting_by_peer: Mutex::new(HashMap::new()),
        })
    }

    /// How many users are configured.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Decides what it can without bcrypt, given the `Authorization` header's value,
    /// for a client whose address is not known.
    pub fn check(self: &Arc<Self>, authorization: Option<&[u8]>) -> Check {
        self.check_from(None, authorization)
    }

    /// [`Authenticator::check`] for a client at `peer`: at most
    /// [`MAX_WAITING_PER_PEER`] of its verifications wait at once.
    pub fn check_from(
        self: &Arc<Self>,
        peer: Option<IpAddr>,
        authorization: Option<&[u8]>,
    ) -> Check {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Check::Denied;
        };
        let (known, hash) = self.lookup(&user);
        let key = cache_key(&user, &hash, &password);
        match self.cached(&key) {
            Some(true) if known => return Check::Allowed,
            Some(_) => return Check::Denied,
            None => {}
        }
        if let Some(ip) = peer {
            let mut by_peer = self.by_peer();
            let n = by_peer.entry(ip).or_default();
            if *n >= MAX_WAITING_PER_PEER {
                return Check::Busy;
            }
            *n += 1;
        }
        // From here on the Verification's drop gives both places back.
        let verification = Verification {
            auth: self.clone(),
            key,
            hash,
            password,
            known,
            peer,
        };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            drop(verification);
            return Check::Busy;
        }
        Check::Verify(verification)
    }

    fn by_peer(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.waiting_by_peer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The user's hash, or the dummy one: every user is compared, in constant time.
    fn lookup(&self, user: &[u8]) -> (bool, Arc<str>) {
        let wanted = sha256(user);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, u) in self.users.iter().enumerate() {
            let eq = u.name_digest.ct_eq(&wanted);
            index = u64::conditional_select(&index, &(i as u64), eq);
            found |= eq;
        }
        let known: bool = found.into();
        let hash = usize::try_from(index)
            .ok()
            .and_then(|i| self.users.get(i))
            .filter(|_| known)
            .map_or_else(|| self.dummy.clone(), |u| u.hash.clone());
        (known, hash)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.good.contains(key) {
            Some(true)
        } else if cache.bad.contains(key) {
            Some(false)
        } else {
            None
        }
    }

    /// Takes over `old`'s cache after a reload. Safe with changed users: an entry's key
    /// includes the hash, and success needs the user to exist now.
    pub fn adopt_cache(&self, old: &Authenticator) {
        if std::ptr::eq(self, old) {
            return;
        }
        let old = old
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = old;
    }
}

impl Verification {
    /// Runs bcrypt (blocking, one at a time across the process's checks of this
    /// configuration) and caches the answer: whether the credentials are good.
    pub fn run(self) -> bool {
        let ok = {
            let _turn = self
                .auth
                .bcrypt
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            bcrypt::verify(&self.password, &self.hash).unwrap_or(false)
        };
        let good = ok && self.known;
        let mut cache = self
            .auth
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if good {
            cache.good.insert(self.key);
        } else {
            cache.bad.insert(self.key);
        }
        good
    }
}

impl Drop for Verification {
    fn drop(&mut self) {
        self.auth.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.peer {
            let mut by_peer = self.auth.by_peer();
            if let Some(n) = by_peer.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    by_peer.remove(&ip);
                }
            }
        }
    }
}

/// Successes and failures, apart: failures cannot evict successes.
#[derive(Clone, Debug, Default)]
struct Cache {
    good: Fifo,
    bad: Fifo,
}

/// A set of at most [`CACHE_SIZE`] keys, the oldest evicted first.
#[derive(Clone, Debug, Default)]
struct Fifo {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Fifo {
    fn contains(&self, key: &[u8; 32]) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: [u8; 32]) {
        if !self.set.insert(key) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > CACHE_SIZE {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// The cost of a bcrypt hash, which must be one the `bcrypt` crate verifies: `$2a$`,
/// `$2b$`, `$2x$` or `$2y$`, cost 4 to 31 (Go's bounds).
///
/// # Errors
/// What is wrong with it.
pub fn hash_cost(hash: &str) -> Result<u32, String> {
    if hash.is_empty() {
        return Err("it is empty".into());
    }
    let parts = bcrypt::HashParts::from_str(hash).map_err(|e| e.to_string())?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("cost {cost} is outside 4 to 31"));
    }
    Ok(cost)
}

/// User and password of an `Authorization: Basic` value, as Go's `Request.BasicAuth`
/// reads them: scheme without case, standard base64, split at the first colon.
pub fn basic_credentials(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let scheme = value.get(..SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.get(SCHEME.len()..)?)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let password = decoded.get(colon + 1..)?.to_vec();
    let mut user = decoded;
    user.truncate(colon);
    Some((user, password))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// The cache key: SHA-256 over user, hash and password, each length-prefixed so no two
/// triples share a key.
fn cache_key(user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&SHA256);
    for part in [user, hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests;
