//! The ciphertext format of one encrypted value, and where a value belongs.
//!
//! ```text
//! offset  size  field
//!      0     1  format version (2; 1 before values were bound to their version)
//!      1     1  owner kind (1 patient, 2 facility)
//!      2    16  owner ID (the patient or facility whose data key encrypted it)
//!     18     4  data key version, big-endian
//!     22    12  nonce (random, 96 bits)
//!     34     n  AES-256-GCM ciphertext
//!   34+n    16  tag
//! ```
//!
//! The associated data is the format, owner kind and key version, and the [`Binding`]: row ID,
//! the value's version, table and column (the owner ID is bound by the owner's own key, the
//! nonce by GCM). A value copied to another row, column, table, patient or facility, or put
//! back into its own row after the row moved on to a newer version, therefore fails to decrypt
//! (docs/adr/0016-values-bound-to-their-version.md).
//!
//! Format 1 had the same header but no version in its associated data. Such values are read
//! only while the database says some may remain (until `renrakucho keys bind-versions` has
//! re-encrypted them all); the keyring decides, this module only tells the formats apart.

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::Aes256Gcm;
use rand::RngCore;
use renrakucho_core::{FacilityId, PatientId};
use smallvec::SmallVec;
use uuid::Uuid;

use crate::error::Problem;

/// Values written before the version was bound (read during the migration only).
pub(crate) const FORMAT_V1: u8 = 1;
/// The version is part of the associated data.
pub(crate) const FORMAT_V2: u8 = 2;
pub(crate) const HEADER_LEN: usize = 34;
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a value grows by when encrypted.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Whose data key encrypts a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOwner {
    /// Data about a patient: the patient's own key, so erasure can destroy it.
    Patient(PatientId),
    /// A facility's private data that is not about a patient.
    Facility(FacilityId),
    /// The platform's own secrets (the operators' authenticators): one key for the network,
    /// readable in the platform's scope only.
    Platform,
}

/// The owner ID of the platform's key (there is one platform).
const PLATFORM_OWNER: Uuid = Uuid::nil();

impl KeyOwner {
    pub(crate) fn code(self) -> u8 {
        match self {
            KeyOwner::Patient(_) => 1,
            KeyOwner::Facility(_) => 2,
            KeyOwner::Platform => 3,
        }
    }

    pub fn id(self) -> Uuid {
        match self {
            KeyOwner::Patient(p) => p.as_uuid(),
            KeyOwner::Facility(f) => f.as_uuid(),
            KeyOwner::Platform => PLATFORM_OWNER,
        }
    }

    /// How the key table names this kind of owner.
    pub fn kind(self) -> renrakucho_store::data_keys::OwnerKind {
        use renrakucho_store::data_keys::OwnerKind;
        match self {
            KeyOwner::Patient(_) => OwnerKind::Patient,
            KeyOwner::Facility(_) => OwnerKind::Facility,
            KeyOwner::Platform => OwnerKind::Platform,
        }
    }

    fn from_parts(code: u8, id: Uuid) -> Option<Self> {
        match code {
            1 => Some(KeyOwner::Patient(PatientId::from_uuid(id))),
            2 => Some(KeyOwner::Facility(FacilityId::from_uuid(id))),
            3 if id == PLATFORM_OWNER => Some(KeyOwner::Platform),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeyOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOwner::Patient(p) => write!(f, "patient {p}"),
            KeyOwner::Facility(id) => write!(f, "facility {id}"),
            KeyOwner::Platform => f.write_str("platform"),
        }
    }
}

/// Where a value belongs: its owner, the table, column and row it is stored in, and which
/// version of that row it is the value of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub owner: KeyOwner,
    pub table: &'a str,
    pub column: &'a str,
    pub row: Uuid,
    /// What makes the value the current one: an entry's version number, a row's revision
    /// (counted by the database at every change of its encrypted columns), or
    /// [`Binding::WRITTEN_ONCE`] for a value that is never replaced.
    pub version: u64,
}

impl Binding<'_> {
    /// The version of values written once and never replaced (their only earlier state is
    /// no value at all).
    pub const WRITTEN_ONCE: u64 = 0;
}

impl std::fmt::Display for Binding<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{} row {} version {} ({})",
            self.table, self.column, self.row, self.version, self.owner
        )
    }
}

/// The parsed header of a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 2, or 1 for a value written before versions were bound.
    pub format: u8,
    pub owner: KeyOwner,
    pub key_version: u32,
    pub nonce: [u8; 12],
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = self.format;
        h[1] = self.owner.code();
        h[2..18].copy_from_slice(self.owner.id().as_bytes());
        h[18..22].copy_from_slice(&self.key_version.to_be_bytes());
        h[22..34].copy_from_slice(&self.nonce);
        h
    }

    /// Reads the header of a stored value, without decrypting anything.
    pub fn parse(value: &[u8]) -> Result<Header, Problem> {
        if value.is_empty() {
            return Err(Problem::Truncated);
        }
        if value[0] != FORMAT_V1 && value[0] != FORMAT_V2 {
            return Err(Problem::UnsupportedFormat(value[0]));
        }
        if value.len() < OVERHEAD {
            return Err(Problem::Truncated);
        }
        let id = Uuid::from_slice(&value[2..18]).map_err(|_| Problem::Truncated)?;
        let owner = KeyOwner::from_parts(value[1], id).ok_or(Problem::Tampered)?;
        let mut version = [0u8; 4];
        version.copy_from_slice(&value[18..22]);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&value[22..34]);
        Ok(Header {
            format: value[0],
            owner,
            key_version: u32::from_be_bytes(version),
            nonce,
        })
    }
}

/// Whether a stored value's associated data names its version (format 2 on). One of format 1
/// names only the row it was stored in (for an entry's history: the version's own row ID), and
/// is read only until `keys bind-versions` has completed.
pub fn names_version(value: &[u8]) -> bool {
    value.first() != Some(&FORMAT_V1)
}

/// What the tag authenticates besides the ciphertext: format, owner kind and key version, and
/// where the value belongs (row, version, table, column; format 1 had no version). The owner ID
/// and the nonce are not repeated: the owner's own key and GCM's IV already bind them. Short on
/// purpose, since it is hashed for every value, and built on the stack.
fn associated_data(header: &[u8], binding: &Binding<'_>) -> SmallVec<[u8; 104]> {
    let mut aad = SmallVec::new();
    aad.extend_from_slice(&header[..2]);
    aad.extend_from_slice(&header[18..22]);
    aad.extend_from_slice(binding.row.as_bytes());
    if header[0] != FORMAT_V1 {
        aad.extend_from_slice(&binding.version.to_be_bytes());
    }
    for part in [binding.table.as_bytes(), binding.column.as_bytes()] {
        // PostgreSQL names are at most 63 bytes, so one length byte keeps this unambiguous.
        aad.push(u8::try_from(part.len()).unwrap_or(u8::MAX));
        aad.extend_from_slice(part);
    }
    aad
}

/// Encrypts `plaintext` for `binding` with `cipher` (version `key_version` of the owner's
/// key), under a fresh random nonce.
pub(crate) fn seal(
    cipher: &Aes256Gcm,
    key_version: u32,
    binding: &Binding<'_>,
    plaintext: &[u8],
) -> Vec<u8> {
    seal_format(FORMAT_V2, cipher, key_version, binding, plaintext)
}

/// Encrypts in format 1, without the version: what servers wrote before versions were bound.
/// For tests of the migration only (`legacy-format` feature); nothing in the server uses it.
#[cfg(any(test, feature = "legacy-format"))]
pub(crate) fn seal_legacy(
    cipher: &Aes256Gcm,
    key_version: u32,
    binding: &Binding<'_>,
    plaintext: &[u8],
) -> Vec<u8> {
    seal_format(FORMAT_V1, cipher, key_version, binding, plaintext)
}

fn seal_format(
    format: u8,
    cipher: &Aes256Gcm,
    key_version: u32,
    binding: &Binding<'_>,
    plaintext: &[u8],
) -> Vec<u8> {
    // A CSPRNG seeded from the operating system and reseeded regularly (and after a fork):
    // unpredictable 96-bit nonces without a system call per value.
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let header = Header {
        format,
        owner: binding.owner,
        key_version,
        nonce,
    }
    .encode();
    let aad = associated_data(&header, binding);
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(
            &Nonce::<Aes256Gcm>::from(nonce),
            &aad,
            (&mut out[HEADER_LEN..]).into(),
        )
        // Only values beyond 64 GiB are refused, which nothing here stores.
        .expect("AES-GCM encrypts any value below its length limit");
    out.extend_from_slice(tag.as_slice());
    out
}

/// Decrypts a value whose header was read as `header`, with the owner's key of that version.
pub(crate) fn open(
    cipher: &Aes256Gcm,
    header: &Header,
    binding: &Binding<'_>,
    value: &[u8],
) -> Result<Vec<u8>, Problem> {
    if header.owner != binding.owner {
        return Err(Problem::WrongOwner);
    }
    let aad = associated_data(&value[..HEADER_LEN], binding);
    let body_end = value.len() - TAG_LEN;
    let tag = Tag::<Aes256Gcm>::try_from(&value[body_end..]).map_err(|_| Problem::Truncated)?;
    // The plaintext goes on to be shown to a person; it is not key material, so it is not
    // zeroized (which would cost more than the decryption itself).
    let mut plaintext = value[HEADER_LEN..body_end].to_vec();
    cipher
        .decrypt_inout_detached(
            &Nonce::<Aes256Gcm>::from(header.nonce),
            &aad,
            plaintext.as_mut_slice().into(),
            &tag,
        )
        .map_err(|_| Problem::Tampered)?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::KeyInit;
    use proptest::prelude::*;

    fn cipher(byte: u8) -> Aes256Gcm {
        Aes256Gcm::new(&[byte; 32].into())
    }

    fn binding(owner: KeyOwner, row: Uuid) -> Binding<'static> {
        Binding {
            owner,
            table: "patients",
            column: "name",
            row,
            version: 3,
        }
    }

    fn patient() -> KeyOwner {
        KeyOwner::Patient(PatientId::new())
    }

    #[test]
    fn a_million_encryptions_never_repeat_a_nonce() {
        let cipher = cipher(1);
        let b = binding(patient(), Uuid::now_v7());
        let mut seen = std::collections::HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let value = seal(&cipher, 1, &b, b"");
            let nonce: [u8; 12] = value[22..34].try_into().unwrap();
            assert!(
                seen.insert(nonce),
                "nonce repeated after {} values",
                seen.len()
            );
        }
    }

    #[test]
    fn the_header_says_whose_key_and_which_version() {
        let owner = patient();
        let b = binding(owner, Uuid::now_v7());
        let value = seal(&cipher(1), 7, &b, "山田 太郎".as_bytes());
        assert_eq!(value.len(), OVERHEAD + "山田 太郎".len());
        let header = Header::parse(&value).unwrap();
        assert_eq!(header.owner, owner);
        assert_eq!(header.key_version, 7);
        assert_eq!(header.format, FORMAT_V2);
        assert_eq!(value[0], FORMAT_V2);
    }

    #[test]
    fn flipping_any_bit_is_detected() {
        let cipher = cipher(1);
        let b = binding(patient(), Uuid::now_v7());
        let value = seal(&cipher, 1, &b, b"BP 128/82, SpO2 97%");
        for i in 0..value.len() {
            for bit in 0..8 {
                let mut altered = value.clone();
                altered[i] ^= 1 << bit;
                let result = Header::parse(&altered).and_then(|h| {
                    if h.key_version != 1 {
                        return Err(Problem::UnknownKeyVersion(h.key_version));
                    }
                    open(&cipher, &h, &b, &altered)
                });
                let problem = result.expect_err("an altered value decrypted");
                let expected: &[Problem] = match i {
                    0 => &[Problem::UnsupportedFormat(altered[0])],
                    1 => &[Problem::Tampered],
                    2..=17 => &[Problem::WrongOwner],
                    18..=21 => &[Problem::UnknownKeyVersion(u32::from_be_bytes(
                        altered[18..22].try_into().unwrap(),
                    ))],
                    _ => &[Problem::Tampered],
                };
                assert!(
                    expected.contains(&problem),
                    "byte {i} bit {bit}: {problem:?}"
                );
            }
        }
    }

    #[test]
    fn a_value_moved_elsewhere_does_not_decrypt() {
        let cipher = cipher(1);
        let owner = patient();
        let row = Uuid::now_v7();
        let value = seal(&cipher, 1, &binding(owner, row), b"090-1234-5678");
        let elsewhere = [
            binding(owner, Uuid::now_v7()),
            Binding {
                column: "phone",
                ..binding(owner, row)
            },
            Binding {
                table: "entries",
                ..binding(owner, row)
            },
        ];
        for other in elsewhere {
            let h = Header::parse(&value).unwrap();
            assert_eq!(
                open(&cipher, &h, &other, &value),
                Err(Problem::Tampered),
                "{other}"
            );
        }
        for other_owner in [patient(), KeyOwner::Facility(FacilityId::new())] {
            let h = Header::parse(&value).unwrap();
            assert_eq!(
                open(&cipher, &h, &binding(other_owner, row), &value),
                Err(Problem::WrongOwner)
            );
        }
        // The right place but another key (another owner's, re-labelled) fails too.
        let h = Header::parse(&value).unwrap();
        assert_eq!(
            open(&super::tests::cipher(2), &h, &binding(owner, row), &value),
            Err(Problem::Tampered)
        );
    }

    #[test]
    fn a_value_of_another_version_does_not_decrypt() {
        let cipher = cipher(1);
        let b = binding(patient(), Uuid::now_v7());
        let value = seal(&cipher, 1, &b, b"BP 128/82");
        let h = Header::parse(&value).unwrap();
        assert_eq!(open(&cipher, &h, &b, &value).unwrap(), b"BP 128/82");
        for version in [0, 2, 4, u64::MAX, 3 << 32] {
            assert_eq!(
                open(&cipher, &h, &Binding { version, ..b }, &value),
                Err(Problem::Tampered),
                "version {version}"
            );
        }
    }

    #[test]
    fn a_format_1_value_names_no_version_and_cannot_pass_for_format_2() {
        let cipher = cipher(1);
        let b = binding(patient(), Uuid::now_v7());
        let legacy = seal_legacy(&cipher, 1, &b, b"old text");
        let h = Header::parse(&legacy).unwrap();
        assert_eq!(h.format, FORMAT_V1);
        // The weakness format 2 removes: a format-1 value reads as any version of its row.
        for version in [0, 3, 99] {
            assert_eq!(
                open(&cipher, &h, &Binding { version, ..b }, &legacy).unwrap(),
                b"old text"
            );
        }
        // Relabelling the format either way breaks the tag.
        let mut as_v2 = legacy.clone();
        as_v2[0] = FORMAT_V2;
        let h2 = Header::parse(&as_v2).unwrap();
        assert_eq!(open(&cipher, &h2, &b, &as_v2), Err(Problem::Tampered));
        let current = seal(&cipher, 1, &b, b"new text");
        let mut as_v1 = current.clone();
        as_v1[0] = FORMAT_V1;
        let h1 = Header::parse(&as_v1).unwrap();
        assert_eq!(open(&cipher, &h1, &b, &as_v1), Err(Problem::Tampered));
    }

    #[test]
    fn every_truncation_is_refused() {
        let cipher = cipher(1);
        let b = binding(patient(), Uuid::now_v7());
        let value = seal(&cipher, 1, &b, b"some text");
        for len in 0..value.len() {
            let cut = &value[..len];
            let problem = Header::parse(cut)
                .and_then(|h| open(&cipher, &h, &b, cut))
                .expect_err("a truncated value decrypted");
            assert!(
                matches!(problem, Problem::Truncated | Problem::Tampered),
                "{len}: {problem:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_value_round_trips(
            plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
            version in 1u32..,
            table in "[a-z_]{1,20}",
            column in "[a-z_]{1,20}",
            row in any::<u128>(),
            row_version in any::<u64>(),
            facility_owned in any::<bool>(),
        ) {
            let owner = if facility_owned {
                KeyOwner::Facility(FacilityId::new())
            } else {
                patient()
            };
            let b = Binding {
                owner,
                table: &table,
                column: &column,
                row: Uuid::from_u128(row),
                version: row_version,
            };
            let cipher = cipher(3);
            let value = seal(&cipher, version, &b, &plaintext);
            let header = Header::parse(&value).unwrap();
            prop_assert_eq!(header.key_version, version);
            let opened = open(&cipher, &header, &b, &value).unwrap();
            prop_assert_eq!(opened.as_slice(), &plaintext[..]);
            let next = Binding { version: row_version.wrapping_add(1), ..b };
            prop_assert_eq!(open(&cipher, &header, &next, &value), Err(Problem::Tampered));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_never_decrypt(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let b = binding(patient(), Uuid::nil());
            let result = Header::parse(&bytes).and_then(|h| open(&cipher(1), &h, &b, &bytes));
            prop_assert!(result.is_err());
        }
    }
}
