//! `ScopedTx::raw_connection_for_tests` hands out a tenant transaction's connection for SQL the
//! repositories never issue: the adversarial isolation tests need it, application code must not
//! have it (all SQL lives in this crate's repositories). Cargo unifies features across a
//! workspace build, so the `raw-sql` feature alone would not stop a production crate from naming
//! it there: this test does.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_production_source_takes_a_raw_connection() {
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&services).expect("reading services/") {
        let crate_dir = entry.expect("a directory entry").path();
        if crate_dir.join("src").is_dir() {
            rust_files(&crate_dir.join("src"), &mut files);
        }
    }
    assert!(
        files.len() > 50,
        "found only {} source files: is the layout what this test expects?",
        files.len()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).expect("reading a source file");
            // The definitions live in this crate's scope module.
            !path.ends_with("store/src/scope.rs") && text.contains("raw_connection_for_tests")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "production code takes a raw connection: {offenders:?}"
    );
}
