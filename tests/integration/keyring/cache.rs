//! The unwrapped-key cache: keys kept within their age bounds and per scope, and no key
//! material in its debug output.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn unwrapped_keys_are_cached_within_their_bounds() {
    // The caches' clock stands still until the test moves it.
    let now = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
    let clock = {
        let now = now.clone();
        CacheClock::new(move || *now.lock().unwrap())
    };
    let max_age = Duration::from_secs(300);
    let f = fixture_with_clock(
        CacheSettings {
            capacity: 2,
            max_age,
        },
        clock,
    )
    .await;
    let sa = Scope::Facility(f.a.id);
    let owner = KeyOwner::Patient(PatientId::new());
    let b = name_of(owner, Uuid::now_v7());
    let value = encrypt(&f.keyring, &f.app.db, sa, &b, "キャッシュ").await;
    let before = f.provider.unwraps.load(Ordering::SeqCst);
    for _ in 0..20 {
        decrypt(&f.keyring, &f.app.db, sa, &b, &value)
            .await
            .unwrap();
    }
    assert_eq!(
        f.provider.unwraps.load(Ordering::SeqCst),
        before,
        "a new key is cached as created"
    );

    *now.lock().unwrap() += max_age - Duration::from_millis(1);
    decrypt(&f.keyring, &f.app.db, sa, &b, &value)
        .await
        .unwrap();
    assert_eq!(
        f.provider.unwraps.load(Ordering::SeqCst),
        before,
        "still cached just before its age"
    );
    *now.lock().unwrap() += Duration::from_millis(1);
    decrypt(&f.keyring, &f.app.db, sa, &b, &value)
        .await
        .unwrap();
    assert_eq!(
        f.provider.unwraps.load(Ordering::SeqCst),
        before + 1,
        "expired after its age"
    );

    // Per scope: B's request never reuses a key A unwrapped (and cannot load it).
    let got = decrypt(&f.keyring, &f.app.db, Scope::Facility(f.b.id), &b, &value).await;
    assert_eq!(problem(got), Problem::UnknownKeyVersion(1));

    // Debug output names no key material.
    let shown = format!("{:?}", f.keyring);
    assert!(
        shown.contains("cached_keys") && !shown.contains("cipher"),
        "{shown}"
    );
}
