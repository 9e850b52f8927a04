//! The capabilities' `unchecked` constructors exist for the tests that bypass the authorizer on
//! purpose (row-level security on its own). Cargo unifies features across a workspace build, so
//! the compiler alone would not stop production code from naming them there: this test does.

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
fn no_production_source_makes_an_unchecked_capability() {
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&services).expect("reading services/") {
        let crate_dir = entry.expect("a directory entry").path();
        let name = crate_dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // The test harness is where capabilities are made unchecked, deliberately.
        if name == "testkit" || !crate_dir.join("src").is_dir() {
            continue;
        }
        rust_files(&crate_dir.join("src"), &mut files);
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
            // The definitions themselves live in authz's capability module.
            !path.ends_with("capability.rs") && text.contains("unchecked(")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "production code makes capabilities without the authorizer: {offenders:?}"
    );
}
