//! Where each encrypted value of the notebook is stored, and which version it belongs to: the
//! associated data it is sealed under, so a value put back elsewhere does not decrypt.

use renrakucho_core::PatientId;
use renrakucho_keyring::{Binding, KeyOwner};
use renrakucho_store::notebook;
use uuid::Uuid;

/// Where an entry's body is stored, and which version it is the body of: in `entries`, the
/// entry's ID and current version; in `entry_versions`, the entry's ID and that version (the
/// pair is the history row's key). A body put back from another version does not decrypt.
pub(crate) fn body_binding(
    patient: PatientId,
    table: &'static str,
    entry: Uuid,
    version: i32,
) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table,
        column: "body_enc",
        row: entry,
        version: renrakucho_registry::bound_version(version.into()),
    }
}

/// The same for an entry's vitals.
pub(crate) fn vitals_binding(
    patient: PatientId,
    table: &'static str,
    entry: Uuid,
    version: i32,
) -> Binding<'static> {
    Binding {
        column: "vitals_enc",
        ..body_binding(patient, table, entry, version)
    }
}

/// Where a value of an entry's history is stored: (entry, version). A value written before
/// versions were bound (format 1, read only until `keys bind-versions` has completed) names the
/// history row's own ID instead.
pub(crate) fn history_binding(
    patient: PatientId,
    column: &'static str,
    version: &notebook::StoredVersion,
    value: &[u8],
) -> Binding<'static> {
    let mut binding = Binding {
        column,
        ..body_binding(patient, "entry_versions", version.entry_id, version.version)
    };
    if !renrakucho_keyring::envelope::names_version(value) {
        binding.row = version.id;
    }
    binding
}

/// A withdrawal's reason is given once (a withdrawn entry never changes again).
pub(crate) fn reason_binding(patient: PatientId, row: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "entries",
        column: "withdrawal_reason_enc",
        row,
        version: Binding::WRITTEN_ONCE,
    }
}

/// A file's name is given once, at upload.
pub(crate) fn file_name_binding(patient: PatientId, row: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "attachments",
        column: "file_name_enc",
        row,
        version: Binding::WRITTEN_ONCE,
    }
}
