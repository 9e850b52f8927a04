//! What every upload (notebook attachments, scans of consent forms) goes through before it is
//! sealed, and what cleans up after uploads that never finished.
//!
//! [`clean`] runs the one cleaning function, `media::process` (photos decoded, turned upright
//! and encoded again without EXIF/GPS; PDFs checked as PDFs), with three bounds so that no
//! upload can hold up anyone else's (issue 12 §1):
//!
//! * what can be refused from the header (size, kind, each side and the pixel count) is refused
//!   before the upload waits for anything ([`media::precheck`]): a decompression bomb costs
//!   nothing and takes no turn;
//! * decoding runs in the blocking pool, at most [`GLOBAL_DECODES`] at a time in the process
//!   and at most [`DECODES_PER_PERSON`] at a time for one staff member: a person sending many
//!   heavy files waits for their own turns, and a colleague's upload gets the other slot;
//! * each file has [`DECODE_TIME_LIMIT`]: after it the person is answered 422. A thread cannot
//!   be stopped from outside, so the decoding runs on to its end, holding its slots until then:
//!   the pool stays bounded, and the header limits bound how long that is.
//!
//! [`sweep_orphaned_files`] deletes stored files that no row names, once they are older than a
//! grace period: an upload whose server was killed between storing the encrypted file and
//! committing its row leaves such a file.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use renrakucho_core::{InvalidValue, PatientId, StaffId};
use renrakucho_files::media::{self, Limits, MediaError, Processed};
use renrakucho_files::FileStore;
use renrakucho_store::{stored_objects, Database, Scope};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::CareError;

/// Decoding a large photo takes hundreds of megabytes and up to seconds of CPU for a moment:
/// at most two at a time in one process.
pub const GLOBAL_DECODES: usize = 2;

/// One person's uploads are decoded one at a time: their second waits for their first, never
/// for a slot someone else could have had.
pub const DECODES_PER_PERSON: usize = 1;

/// The longest one file may take to be prepared before its sender is answered. A 50-megapixel
/// photo takes about a second.
pub const DECODE_TIME_LIMIT: Duration = Duration::from_secs(30);

/// Turns to decode: a process-wide number, and a number per person.
pub(crate) struct DecodeSlots {
    global: Arc<Semaphore>,
    per_person: usize,
    /// One semaphore per person with an upload waiting or being decoded; removed when the
    /// person's last one ends, so the map holds only the people uploading now.
    people: Mutex<HashMap<StaffId, Arc<Semaphore>>>,
}

/// A turn to decode: released when dropped (after the decoding ends, wherever it runs).
pub(crate) struct DecodeSlot<'a> {
    slots: &'a DecodeSlots,
    who: StaffId,
    own: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
}

impl DecodeSlots {
    pub(crate) fn new(global: usize, per_person: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(global)),
            per_person,
            people: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the person's own turn first, and only then for one of the process's: a person
    /// waiting on themselves holds no slot someone else could use.
    pub(crate) async fn acquire(&self, who: StaffId) -> DecodeSlot<'_> {
        let mine = {
            let mut people = self.people.lock().expect("the slot map is never poisoned");
            Arc::clone(
                people
                    .entry(who)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_person))),
            )
        };
        let own = mine
            .acquire_owned()
            .await
            .expect("the semaphores stay open");
        let global = Arc::clone(&self.global)
            .acquire_owned()
            .await
            .expect("the semaphores stay open");
        DecodeSlot {
            slots: self,
            who,
            own: Some(own),
            _global: global,
        }
    }

    #[cfg(test)]
    fn people(&self) -> usize {
        self.people.lock().unwrap().len()
    }
}

impl Drop for DecodeSlot<'_> {
    fn drop(&mut self) {
        drop(self.own.take());
        let mut people = self
            .slots
            .people
            .lock()
            .expect("the slot map is never poisoned");
        // Only the map holds it: no one of this person's is waiting or decoding.
        if people
            .get(&self.who)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            people.remove(&self.who);
        }
    }
}

static SLOTS: LazyLock<DecodeSlots> =
    LazyLock::new(|| DecodeSlots::new(GLOBAL_DECODES, DECODES_PER_PERSON));

/// Runs `work` in the blocking pool in a turn of `slots`, answering after `time_limit` at the
/// latest; the turn is held until `work` really ends.
pub(crate) async fn in_turn<T: Send + 'static>(
    slots: &'static DecodeSlots,
    who: StaffId,
    time_limit: Duration,
    work: impl FnOnce() -> Result<T, MediaError> + Send + 'static,
) -> Result<T, CareError> {
    let slot = slots.acquire(who).await;
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    });
    match tokio::time::timeout(time_limit, task).await {
        // A refusal on `file` (attachments.rs), renamed by `clean` for other fields.
        Ok(Ok(done)) => done.map_err(CareError::from),
        Ok(Err(e)) => Err(CareError::Corrupt(format!("processing an upload: {e}"))),
        Err(_) => {
            tracing::warn!(
                limit_s = time_limit.as_secs(),
                "an upload took longer than its time limit to prepare; refused"
            );
            Err(MediaError::TooSlow.into())
        }
    }
}

/// Checks and cleans an upload of `who` with the one cleaning function (`media::process`), in a
/// bounded turn (see the module documentation). A refusal is a 422 on `field`.
pub async fn clean(
    who: StaffId,
    field: &'static str,
    bytes: Vec<u8>,
    limits: Limits,
) -> Result<Processed, CareError> {
    let named = |e: CareError| match e {
        CareError::Invalid(v) if v.field == "file" => {
            CareError::Invalid(InvalidValue::new(field, v.message))
        }
        other => other,
    };
    if let Err(e) = media::precheck(&bytes, &limits) {
        return Err(named(e.into()));
    }
    in_turn(&SLOTS, who, DECODE_TIME_LIMIT, move || {
        media::process(&bytes, &limits)
    })
    .await
    .map_err(named)
}

/// How old a stored file must be before the sweep may call it an orphan: an upload stores its
/// file and then writes its row in the same transaction, which takes moments, never an hour.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// The folders files are stored in, each with one folder per patient.
const FOLDERS: [&str; 2] = ["consents", "attachments"];

/// How many names one question to the database carries.
const BATCH: usize = 500;

/// Deletes the files in the file store that no row names and that were stored more than `grace`
/// ago; how many it deleted. Safe beside uploads in flight (a file younger than `grace` is never
/// looked at; a file is only ever written before its row, in the row's transaction), beside
/// other server processes sweeping too (deleting a file already gone is no error), and with
/// either store: names carry IDs only and are checked against the rows by the database
/// (`unreferenced_objects`, key maintenance), patient by patient. A name that is not shaped
/// like one of ours is left alone.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn sweep_orphaned_files(
    db: &Database,
    files: &FileStore,
    grace: Duration,
) -> Result<usize, CareError> {
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut deleted = 0;
    for folder in FOLDERS {
        let mut by_patient: HashMap<Uuid, Vec<String>> = HashMap::new();
        for name in files.stored_before(folder, cutoff).await? {
            if let Some(patient) = patient_of(folder, &name) {
                by_patient.entry(patient).or_default().push(name);
            }
        }
        for (patient, names) in by_patient {
            for batch in names.chunks(BATCH) {
                let mut tx = db.begin(Scope::KeyMaintenance).await?;
                let orphans =
                    stored_objects::unreferenced(&mut tx, PatientId::from_uuid(patient), batch)
                        .await?;
                tx.commit().await?;
                for name in orphans {
                    files.delete_and_tidy(&name).await?;
                    deleted += 1;
                }
            }
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "orphaned uploads deleted from the file store");
    }
    Ok(deleted)
}

/// The patient of `<folder>/<patient>/<file>`, if the name has that shape.
fn patient_of(folder: &str, name: &str) -> Option<Uuid> {
    let mut parts = name.split('/');
    if parts.next()? != folder {
        return None;
    }
    let patient = Uuid::parse_str(parts.next()?).ok()?;
    let file = parts.next()?;
    (parts.next().is_none() && !file.is_empty()).then_some(patient)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> StaffId {
        StaffId::from_uuid(Uuid::now_v7())
    }

    #[tokio::test]
    async fn one_persons_second_upload_waits_for_their_first_not_for_a_colleague() {
        let slots = DecodeSlots::new(2, 1);
        let (a, b) = (person(), person());
        let first = slots.acquire(a).await;
        // A's second upload has no turn while the first is decoding…
        let mut second = Box::pin(slots.acquire(a));
        assert!(futures_poll(&mut second).is_none());
        // …and holds no slot: a colleague's upload gets one at once.
        let colleague = slots.acquire(b).await;
        assert_eq!(slots.people(), 2);
        drop(colleague);
        drop(first);
        let second = second.await;
        drop(second);
        // Nobody uploading: nobody remembered.
        assert_eq!(slots.people(), 0);
    }

    #[tokio::test]
    async fn the_process_wide_limit_holds_across_people() {
        let slots = DecodeSlots::new(1, 1);
        let (a, b) = (person(), person());
        let first = slots.acquire(a).await;
        let mut other = Box::pin(slots.acquire(b));
        assert!(futures_poll(&mut other).is_none());
        drop(first);
        drop(other.await);
        assert_eq!(slots.people(), 0);
    }

    /// Polls a future once: its output if it is ready.
    fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn a_file_over_its_time_limit_is_refused_and_keeps_its_turn_until_it_ends() {
        static SLOW: LazyLock<DecodeSlots> = LazyLock::new(|| DecodeSlots::new(1, 1));
        let who = person();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let refused = in_turn(&SLOW, who, Duration::from_millis(50), move || {
            // Runs on until the test lets it end.
            let _ = done_rx.recv();
            Ok(())
        })
        .await
        .unwrap_err();
        match refused {
            CareError::Invalid(v) => {
                assert_eq!(v.field, "file");
                assert_eq!(v.message, MediaError::TooSlow.to_string());
            }
            other => panic!("expected a 422, got {other:?}"),
        }
        // The work still runs: its turn is still taken.
        let mut next = Box::pin(SLOW.acquire(person()));
        assert!(futures_poll(&mut next).is_none());
        done_tx.send(()).unwrap();
        drop(next.await);
    }

    #[test]
    fn only_names_shaped_like_ours_name_a_patient() {
        let p = Uuid::now_v7();
        assert_eq!(
            patient_of("consents", &format!("consents/{p}/{p}")),
            Some(p)
        );
        assert_eq!(
            patient_of("attachments", &format!("attachments/{p}/{p}.thumb")),
            Some(p)
        );
        for odd in [
            format!("consents/{p}"),
            format!("consents/{p}/a/b"),
            format!("attachments/{p}/x"),
            "consents/not-a-uuid/x".to_string(),
        ] {
            assert_eq!(patient_of("consents", &odd), None, "{odd}");
        }
    }
}
