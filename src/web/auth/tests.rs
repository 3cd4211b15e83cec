use super::*;
use base64::engine::general_purpose::STANDARD;

fn header(user: &str, password: &str) -> Vec<u8> {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))).into_bytes()
}

fn users(list: &[(&str, &str, u32)]) -> Arc<Authenticator> {
    let map: BTreeMap<String, Option<String>> = list
        .iter()
        .map(|(u, p, cost)| (u.to_string(), Some(bcrypt::hash(p, *cost).unwrap())))
        .collect();
    Arc::new(Authenticator::new(&map).unwrap())
}

/// Checks, running a verification when one is asked for: the answer, and whether
/// bcrypt ran.
fn decide(auth: &Arc<Authenticator>, value: &[u8]) -> (bool, bool) {
    match auth.check(Some(value)) {
        Check::Allowed => (true, false),
        Check::Denied => (false, false),
        Check::Verify(v) => (v.run(), true),
        Check::Busy => panic!("busy"),
    }
}

#[test]
fn the_header_is_read_as_go_reads_it() {
    let b = |s: &str| basic_credentials(s.as_bytes());
    let pair = |u: &str, p: &str| Some((u.as_bytes().to_vec(), p.as_bytes().to_vec()));
    assert_eq!(b("Basic YWxpY2U6czNjcjN0"), pair("alice", "s3cr3t"));
    assert_eq!(b("basic YWxpY2U6czNjcjN0"), pair("alice", "s3cr3t"));
    assert_eq!(b("BASIC YWxpY2U6czNjcjN0"), pair("alice", "s3cr3t"));
    // The first colon splits; the password may hold more.
    assert_eq!(basic_credentials(&header("a", "b:c")), pair("a", "b:c"));
    assert_eq!(basic_credentials(&header("", "")), pair("", ""));
    assert_eq!(b("Basic YWxpY2U="), None, "no colon");
    assert_eq!(b("Basic !!!"), None, "not base64");
    assert_eq!(b("Basic YWxpY2U6czNjcjN0="), None, "bad padding");
    assert_eq!(b("Bearer YWxpY2U6czNjcjN0"), None);
    assert_eq!(b("Basic"), None);
    assert_eq!(b(""), None);
    assert_eq!(basic_credentials(b"Basic \xff\xfe"), None);
}

#[test]
fn good_credentials_are_verified_once_then_cached() {
    let auth = users(&[("alice", "s3cr3t", 4), ("bob", "hunter2", 4)]);
    assert_eq!(decide(&auth, &header("alice", "s3cr3t")), (true, true));
    assert_eq!(
        decide(&auth, &header("alice", "s3cr3t")),
        (true, false),
        "cached"
    );
    assert_eq!(decide(&auth, &header("bob", "hunter2")), (true, true));
    assert_eq!(
        decide(&auth, &header("alice", "hunter2")),
        (false, true),
        "bob's password"
    );
    assert_eq!(
        decide(&auth, &header("alice", "hunter2")),
        (false, false),
        "failure cached"
    );
    assert!(matches!(auth.check(None), Check::Denied));
    assert!(matches!(auth.check(Some(b"Basic garbage")), Check::Denied));
}

/// An unknown user costs a bcrypt run against the costliest configured hash, and is
/// refused whatever the password (even another user's right one).
#[test]
fn unknown_users_take_the_dummy_path() {
    let auth = users(&[("alice", "s3cr3t", 4), ("bob", "hunter2", 5)]);
    let (known, hash) = auth.lookup(b"mallory");
    assert!(!known);
    assert_eq!(hash_cost(&hash), Ok(5), "the costliest hash");
    assert_eq!(&*hash, &*auth.lookup(b"bob").1);
    assert_eq!(decide(&auth, &header("mallory", "hunter2")), (false, true));
    assert_eq!(decide(&auth, &header("mallory", "hunter2")), (false, false));
    let (known, hash) = auth.lookup(b"alice");
    assert!(known);
    assert_eq!(hash_cost(&hash), Ok(4));
}

#[test]
fn a_flood_of_wrong_passwords_does_not_evict_good_credentials() {
    let auth = users(&[("alice", "s3cr3t", 4)]);
    assert_eq!(decide(&auth, &header("alice", "s3cr3t")), (true, true));
    for i in 0..CACHE_SIZE * 2 {
        assert_eq!(
            decide(&auth, &header("alice", &format!("guess{i}"))),
            (false, true)
        );
    }
    assert_eq!(
        decide(&auth, &header("alice", "s3cr3t")),
        (true, false),
        "still cached"
    );
    // The failures' cache is bounded: the oldest guess was evicted, the newest kept.
    assert_eq!(decide(&auth, &header("alice", "guess0")), (false, true));
    let last = format!("guess{}", CACHE_SIZE * 2 - 1);
    assert_eq!(decide(&auth, &header("alice", &last)), (false, false));
}

#[test]
fn too_many_waiting_verifications_are_busy() {
    let auth = users(&[("alice", "s3cr3t", 4)]);
    let waiting: Vec<Verification> = (0..MAX_WAITING)
        .map(
            |i| match auth.check(Some(&header("alice", &format!("p{i}")))) {
                Check::Verify(v) => v,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert!(matches!(
        auth.check(Some(&header("alice", "s3cr3t"))),
        Check::Busy
    ));
    // Cached answers need no bcrypt and are never busy.
    drop(waiting);
    assert_eq!(decide(&auth, &header("alice", "s3cr3t")), (true, true));
    let _hold: Vec<_> = (0..MAX_WAITING)
        .map(|i| auth.check(Some(&header("alice", &format!("q{i}")))))
        .collect();
    assert!(matches!(
        auth.check(Some(&header("alice", "s3cr3t"))),
        Check::Allowed
    ));
}

/// Verifications move to other threads (as to `spawn_blocking`); two of the same
/// credentials handed out before either ran both verify, and agree.
#[test]
fn verifications_run_on_other_threads() {
    let auth = users(&[("alice", "s3cr3t", 4)]);
    let pending: Vec<Verification> = ["s3cr3t", "nope", "s3cr3t", "nope"]
        .into_iter()
        .map(|pw| match auth.check(Some(&header("alice", pw))) {
            Check::Verify(v) => v,
            other => panic!("first sight: {other:?}"),
        })
        .collect();
    let handles: Vec<_> = pending
        .into_iter()
        .map(|v| std::thread::spawn(move || v.run()))
        .collect();
    let got: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, [true, false, true, false]);
    assert_eq!(auth.waiting.load(Ordering::Relaxed), 0);
    assert!(matches!(
        auth.check(Some(&header("alice", "s3cr3t"))),
        Check::Allowed
    ));
}

/// After a reload the cache carries over, but never lets a removed user in, even one
/// whose hash another user shares.
#[test]
fn an_adopted_cache_cannot_resurrect_a_removed_user() {
    let hash = bcrypt::hash("shared", 4).unwrap();
    let both: BTreeMap<String, Option<String>> = [("alice", &hash), ("bob", &hash)]
        .into_iter()
        .map(|(u, h)| (u.to_owned(), Some(h.clone())))
        .collect();
    let old = Arc::new(Authenticator::new(&both).unwrap());
    assert_eq!(decide(&old, &header("bob", "shared")), (true, true));
    assert_eq!(decide(&old, &header("alice", "shared")), (true, true));
    let alice_only: BTreeMap<String, Option<String>> = [("alice".to_owned(), Some(hash.clone()))]
        .into_iter()
        .collect();
    let new = Arc::new(Authenticator::new(&alice_only).unwrap());
    new.adopt_cache(&old);
    assert_eq!(
        decide(&new, &header("alice", "shared")),
        (true, false),
        "carried over"
    );
    assert!(!decide(&new, &header("bob", "shared")).0, "bob is gone");
}

#[test]
fn bad_hashes_are_refused() {
    assert_eq!(hash_cost(&bcrypt::hash("x", 4).unwrap()), Ok(4));
    // htpasswd -nBC 10 writes $2y$.
    assert_eq!(
        hash_cost("$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"),
        Ok(10)
    );
    for bad in [
        "",
        "secret",
        "$1$abcdefgh$abcdefghijklmnopqrstuv",
        "$2y$03$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG",
        "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7z",
        "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7z£",
        "$2q$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG",
    ] {
        assert!(hash_cost(bad).is_err(), "{bad:?}");
    }
    let map: BTreeMap<String, Option<String>> = [("alice".to_owned(), Some("nope".to_owned()))]
        .into_iter()
        .collect();
    let (key, problem) = Authenticator::new(&map).unwrap_err();
    assert_eq!(key, "basic_auth_users.alice");
    assert!(matches!(problem, Problem::BadHash(_)));
}

/// One flooding address holds at most [`MAX_WAITING_PER_PEER`] places: a client at
/// another address still reaches bcrypt, and the places come back when the checks end.
#[test]
fn test_issue_12_one_address_cannot_take_every_place() {
    let auth = users(&[("alice", "s3cr3t", 4)]);
    let flooder: IpAddr = "10.0.0.66".parse().unwrap();
    let scraper: IpAddr = "10.0.0.9".parse().unwrap();
    let wrong = |i: usize| header("alice", &format!("w{i}"));
    let held: Vec<Check> = (0..MAX_WAITING_PER_PEER)
        .map(|i| auth.check_from(Some(flooder), Some(&wrong(i))))
        .collect();
    assert!(held.iter().all(|c| matches!(c, Check::Verify(_))));
    let more = auth.check_from(Some(flooder), Some(&wrong(99)));
    assert!(matches!(more, Check::Busy), "{more:?}");
    let Check::Verify(v) = auth.check_from(Some(scraper), Some(&header("alice", "s3cr3t"))) else {
        panic!("the scraper's new credentials wait for bcrypt");
    };
    assert!(v.run());
    drop(held);
    assert!(matches!(
        auth.check_from(Some(flooder), Some(&wrong(100))),
        Check::Verify(_)
    ));
    assert!(
        auth.by_peer().len() <= 1,
        "addresses with nothing pending are forgotten"
    );
}
