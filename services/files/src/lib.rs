//! Where encrypted files are kept (scans of consent forms, notebook attachments), behind one
//! interface: [`FileStore`] over `object_store`, a local directory by default. Files arrive
//! here already encrypted by the keyring and leave encrypted; this crate never sees content in
//! the clear, and object names carry IDs only.
//!
//! [`sniff`] tells what a file is from its first bytes, never from its name.

pub mod media;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// What went wrong with a stored file. Messages name the object, never its content.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("no such file: {0}")]
    NotFound(String),
    /// The store could not be reached or refused the operation (the server answers 503).
    #[error("the file store is unavailable: {0}")]
    Unavailable(String),
    #[error("invalid file name {0:?}")]
    InvalidName(String),
    #[error("the file store is misconfigured: {0}")]
    Misconfigured(String),
    /// The local directory could be read by other system users: scans and attachments are
    /// encrypted, but their names and sizes are not, and a copy invites offline attacks.
    #[error(
        "the file store directory {dir} is accessible to other users (mode {mode:o}); \
         run `chmod 700 {dir}` and check who may have copied it"
    )]
    NotPrivate { dir: PathBuf, mode: u32 },
}

fn classify(name: &str, e: object_store::Error) -> FileError {
    match e {
        object_store::Error::NotFound { .. } => FileError::NotFound(name.to_string()),
        other => FileError::Unavailable(format!("{name}: {other}")),
    }
}

/// Refuses a local store directory that anyone but its owner may list, enter or write.
fn check_private(dir: &Path) -> Result<(), FileError> {
    let mode = std::fs::metadata(dir)
        .map_err(|e| FileError::Misconfigured(format!("{}: {e}", dir.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(FileError::NotPrivate {
            dir: dir.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// Removes `dir` and the folders under it, if no file is left in them (a file written meanwhile
/// keeps its folders). A folder that is already gone is not an error.
fn remove_empty_folders(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_empty_folders(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Not empty: a file is still there, and so is the folder.
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
        Err(e) => Err(e),
    }
}

/// Where an S3 (or S3-compatible) bucket is.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Another endpoint than AWS's (an S3-compatible service, a VPC endpoint, an emulator).
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// The file store of one server process.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<dyn ObjectStore>,
    description: String,
    /// The directory of a local store (whose folders outlive their files unless removed).
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("at", &self.description)
            .finish()
    }
}

impl FileStore {
    /// Files in a local directory, created (mode 0700) when missing; refused when other users
    /// may enter it. Its parents get the usual mode, never 0700: the data directory must stay
    /// traversable for the private PostgreSQL's `postgres` user.
    pub fn local(dir: &Path) -> Result<Self, FileError> {
        use std::os::unix::fs::DirBuilderExt;
        if !dir.exists() {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    FileError::Misconfigured(format!("creating {}: {e}", parent.display()))
                })?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    FileError::Misconfigured(format!("creating {}: {e}", dir.display()))
                })?;
        }
        check_private(dir)?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| FileError::Misconfigured(format!("{}: {e}", dir.display())))?;
        Ok(Self {
            local_root: Some(dir.to_path_buf()),
            ..Self::new(Arc::new(store), format!("directory {}", dir.display()))
        })
    }

    /// Files in an S3 bucket (AWS, or any S3-compatible service at `endpoint`). Credentials
    /// come from the usual AWS environment (`AWS_ACCESS_KEY_ID`, …) when not given.
    pub fn s3(config: &S3Config) -> Result<Self, FileError> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region);
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| FileError::Misconfigured(format!("S3 bucket {}: {e}", config.bucket)))?;
        Ok(Self::new(
            Arc::new(store),
            format!("S3 bucket {}", config.bucket),
        ))
    }

    /// Any object store (S3 and friends are configured by the server).
    pub fn new(inner: Arc<dyn ObjectStore>, description: String) -> Self {
        Self {
            inner,
            description,
            local_root: None,
        }
    }

    fn path(name: &str) -> Result<ObjectPath, FileError> {
        let ok = !name.is_empty()
            && name.len() <= 200
            && name.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    && part != "."
                    && part != ".."
            });
        if !ok {
            return Err(FileError::InvalidName(name.to_string()));
        }
        ObjectPath::parse(name).map_err(|_| FileError::InvalidName(name.to_string()))
    }

    /// Stores `bytes` under `name` (atomically: readers see all or nothing).
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), FileError> {
        let path = Self::path(name)?;
        self.inner
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| classify(name, e))?;
        Ok(())
    }

    pub async fn get(&self, name: &str) -> Result<Vec<u8>, FileError> {
        let path = Self::path(name)?;
        let found = self.inner.get(&path).await.map_err(|e| classify(name, e))?;
        let bytes = found.bytes().await.map_err(|e| classify(name, e))?;
        Ok(bytes.to_vec())
    }

    /// Removes `name`; a file that is already gone is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), FileError> {
        let path = Self::path(name)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify(name, e)),
        }
    }

    /// Removes every file whose name starts with the folder `prefix` (`attachments/<id>`):
    /// all of a patient's files, whoever uploaded them, and in a local store the folder itself
    /// (its name is the patient's ID). Returns how many files were removed.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, FileError> {
        use futures_util::TryStreamExt;
        let path = Self::path(prefix)?;
        let found: Vec<ObjectPath> = self
            .inner
            .list(Some(&path))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| classify(prefix, e))?;
        for location in &found {
            match self.inner.delete(location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(classify(location.as_ref(), e)),
            }
        }
        if let Some(root) = &self.local_root {
            let folder = root.join(path.as_ref());
            remove_empty_folders(&folder)
                .map_err(|e| FileError::Unavailable(format!("{prefix}: {e}")))?;
        }
        Ok(found.len())
    }

    /// The names of the files under the folder `prefix` stored before `cutoff` (their last
    /// modification in the store: a local file's mtime, an S3 object's `LastModified`). What
    /// the sweep of orphaned uploads looks at: a newer file may belong to an upload whose row
    /// is still being written.
    pub async fn stored_before(
        &self,
        prefix: &str,
        cutoff: std::time::SystemTime,
    ) -> Result<Vec<String>, FileError> {
        use futures_util::TryStreamExt;
        let path = Self::path(prefix)?;
        let found: Vec<String> = self
            .inner
            .list(Some(&path))
            .try_filter(|meta| {
                std::future::ready(std::time::SystemTime::from(meta.last_modified) < cutoff)
            })
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(|e| classify(prefix, e))?;
        Ok(found)
    }

    /// Removes `name` like [`FileStore::delete`], and in a local store its folder too when
    /// nothing is left in it (the folder's name is a patient's ID). A file written into the
    /// folder meanwhile keeps it (the store creates missing folders when it writes).
    pub async fn delete_and_tidy(&self, name: &str) -> Result<(), FileError> {
        self.delete(name).await?;
        if let (Some(root), Some((folder, _))) = (&self.local_root, name.rsplit_once('/')) {
            match std::fs::remove_dir(root.join(folder)) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                    ) => {}
                Err(e) => return Err(FileError::Unavailable(format!("{folder}: {e}"))),
            }
        }
        Ok(())
    }
}

/// A kind of file the network accepts, told from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Pdf,
    Jpeg,
    Png,
    Heic,
}

impl MediaKind {
    pub fn media_type(self) -> &'static str {
        match self {
            MediaKind::Pdf => "application/pdf",
            MediaKind::Jpeg => "image/jpeg",
            MediaKind::Png => "image/png",
            MediaKind::Heic => "image/heic",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            MediaKind::Pdf => "pdf",
            MediaKind::Jpeg => "jpg",
            MediaKind::Png => "png",
            MediaKind::Heic => "heic",
        }
    }

    pub fn parse(media_type: &str) -> Option<Self> {
        [
            MediaKind::Pdf,
            MediaKind::Jpeg,
            MediaKind::Png,
            MediaKind::Heic,
        ]
        .into_iter()
        .find(|k| k.media_type() == media_type)
    }
}

/// Whether an upload's declared `Content-Type` must be refused: missing or unreadable, or one
/// another site's page can make a browser send without asking this server first (a form's
/// `multipart/form-data` or `application/x-www-form-urlencoded`, or `text/plain`, the CORS
/// "simple" types). Refusing them means an upload needs a type only this site's scripts or an
/// API client sends. The type is parsed and compared as a media type, so letter case,
/// whitespace and parameters (`Text/Plain; charset=UTF-8`) change nothing.
pub fn refused_upload_type(content_type: Option<&str>) -> bool {
    let Some(Ok(declared)) = content_type.map(|t| t.trim().parse::<mime::Mime>()) else {
        return true;
    };
    let essence = (declared.type_(), declared.subtype());
    essence == (mime::MULTIPART, mime::FORM_DATA)
        || essence == (mime::APPLICATION, mime::WWW_FORM_URLENCODED)
        || essence == (mime::TEXT, mime::PLAIN)
}

/// What the bytes are, from their signature; `None` for anything not accepted.
pub fn sniff(bytes: &[u8]) -> Option<MediaKind> {
    match infer::get(bytes)?.mime_type() {
        "application/pdf" => Some(MediaKind::Pdf),
        "image/jpeg" => Some(MediaKind::Jpeg),
        "image/png" => Some(MediaKind::Png),
        "image/heif" | "image/heic" => Some(MediaKind::Heic),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_like_upload_types_are_refused_whatever_their_case() {
        for refused in [
            None,
            Some(""),
            Some("not a type"),
            Some("text/plain"),
            Some("Text/Plain"),
            Some("TEXT/PLAIN; charset=UTF-8"),
            Some(" text/plain "),
            Some("Multipart/Form-Data; boundary=x"),
            Some("APPLICATION/X-WWW-FORM-URLENCODED"),
        ] {
            assert!(refused_upload_type(refused), "{refused:?}");
        }
        for accepted in [
            "image/png",
            "Image/JPEG",
            "application/pdf",
            "application/octet-stream",
            "text/html",
        ] {
            assert!(!refused_upload_type(Some(accepted)), "{accepted}");
        }
    }

    #[tokio::test]
    async fn a_local_store_keeps_removes_and_refuses_odd_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::local(&dir.path().join("files")).unwrap();
        store
            .put("consents/abc/1", b"sealed".to_vec())
            .await
            .unwrap();
        assert_eq!(store.get("consents/abc/1").await.unwrap(), b"sealed");
        store.delete("consents/abc/1").await.unwrap();
        store.delete("consents/abc/1").await.unwrap();
        assert!(matches!(
            store.get("consents/abc/1").await,
            Err(FileError::NotFound(_))
        ));
        for name in [
            "attachments/p1/a",
            "attachments/p1/a.thumb",
            "attachments/p2/b",
        ] {
            store.put(name, vec![1]).await.unwrap();
        }
        assert_eq!(store.delete_prefix("attachments/p1").await.unwrap(), 2);
        assert!(store.get("attachments/p1/a").await.is_err());
        // The erased owner's folder goes too; another owner's stays.
        assert!(!dir.path().join("files/attachments/p1").exists());
        assert!(dir.path().join("files/attachments/p2").exists());
        assert_eq!(store.get("attachments/p2/b").await.unwrap(), vec![1]);
        assert_eq!(store.delete_prefix("attachments/p1").await.unwrap(), 0);
        for bad in ["", "../etc/passwd", "a//b", "a/../b", "名前", "a b"] {
            assert!(matches!(
                store.put(bad, vec![1]).await,
                Err(FileError::InvalidName(_))
            ));
        }
    }

    #[tokio::test]
    async fn old_files_are_listed_for_the_sweep_and_their_emptied_folder_goes_with_them() {
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        let store = FileStore::local(&root).unwrap();
        for name in ["consents/p1/old", "consents/p1/new", "consents/p2/old"] {
            store.put(name, vec![1]).await.unwrap();
        }
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        for name in ["consents/p1/old", "consents/p2/old"] {
            std::fs::File::options()
                .write(true)
                .open(root.join(name))
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let mut old = store.stored_before("consents", an_hour_ago).await.unwrap();
        old.sort();
        assert_eq!(old, ["consents/p1/old", "consents/p2/old"]);
        for name in &old {
            store.delete_and_tidy(name).await.unwrap();
            store.delete_and_tidy(name).await.unwrap();
        }
        // p2's folder is empty and goes; p1's keeps its new file.
        assert!(!root.join("consents/p2").exists());
        assert_eq!(store.get("consents/p1/new").await.unwrap(), vec![1]);
    }

    #[test]
    fn a_local_store_is_private_but_its_parents_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o711)).unwrap();
        let files = data.join("nested").join("files");
        FileStore::local(&files).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files), 0o700);
        // Parents are left alone (the `postgres` user must still traverse the data directory).
        assert_eq!(mode(&data), 0o711);
        // Opening it again is fine.
        FileStore::local(&files).unwrap();
    }

    #[test]
    fn a_local_store_others_may_enter_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        FileStore::local(&files).unwrap();
        for exposed in [0o755, 0o750, 0o711, 0o701, 0o720] {
            std::fs::set_permissions(&files, std::fs::Permissions::from_mode(exposed)).unwrap();
            let error = FileStore::local(&files).unwrap_err();
            assert!(
                matches!(&error, FileError::NotPrivate { dir, mode } if dir == &files && *mode == exposed),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains(&format!("chmod 700 {}", files.display())),
                "{message}"
            );
        }
        std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o700)).unwrap();
        FileStore::local(&files).unwrap();
    }

    #[test]
    fn an_existing_directory_is_checked_not_changed() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir(&files).unwrap();
        std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            FileStore::local(&files),
            Err(FileError::NotPrivate { .. })
        ));
        let mode = std::fs::metadata(&files).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o755,
            "the operator fixes it; we do not chmod behind their back"
        );
        std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o700)).unwrap();
        FileStore::local(&files).unwrap();
    }

    #[test]
    fn content_decides_the_kind_not_the_name() {
        assert_eq!(
            sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
            Some(MediaKind::Pdf)
        );
        assert_eq!(
            sniff(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]),
            Some(MediaKind::Png)
        );
        assert_eq!(
            sniff(&[0xff, 0xd8, 0xff, 0xe0, 0, 0x10, b'J', b'F']),
            Some(MediaKind::Jpeg)
        );
        assert_eq!(sniff(b"<html><script>alert(1)</script>"), None);
        assert_eq!(sniff(b"MZ\x90\x00"), None);
        assert_eq!(sniff(b""), None);
    }
}
