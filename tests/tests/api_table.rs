//! The README's table of the 42 RSMAPI functions (spec §4, illumos `mapfile-vers`) cannot
//! drift: this test reads it and checks, for every row, that
//! - the C name is one of the 42 and each appears exactly once;
//! - rsm-core has a `#[doc(alias = "<C name>")]` on an item named as the table's Rust column;
//! - the test file named in the row exists and mentions the Rust method or the C name.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The 42 exported functions of illumos librsm (spec §0, `mapfile-vers`).
const FUNCTIONS: [&str; 42] = [
    "rsm_get_controller",
    "rsm_get_controller_attr",
    "rsm_release_controller",
    "rsm_get_interconnect_topology",
    "rsm_free_interconnect_topology",
    "rsm_get_segmentid_range",
    "rsm_memseg_export_create",
    "rsm_memseg_export_destroy",
    "rsm_memseg_export_rebind",
    "rsm_memseg_export_publish",
    "rsm_memseg_export_unpublish",
    "rsm_memseg_export_republish",
    "rsm_memseg_import_connect",
    "rsm_memseg_import_disconnect",
    "rsm_memseg_import_get",
    "rsm_memseg_import_get8",
    "rsm_memseg_import_get16",
    "rsm_memseg_import_get32",
    "rsm_memseg_import_get64",
    "rsm_memseg_import_put",
    "rsm_memseg_import_put8",
    "rsm_memseg_import_put16",
    "rsm_memseg_import_put32",
    "rsm_memseg_import_put64",
    "rsm_memseg_import_putv",
    "rsm_memseg_import_getv",
    "rsm_create_localmemory_handle",
    "rsm_free_localmemory_handle",
    "rsm_memseg_import_map",
    "rsm_memseg_import_unmap",
    "rsm_memseg_import_init_barrier",
    "rsm_memseg_import_open_barrier",
    "rsm_memseg_import_order_barrier",
    "rsm_memseg_import_close_barrier",
    "rsm_memseg_import_destroy_barrier",
    "rsm_memseg_import_set_mode",
    "rsm_memseg_import_get_mode",
    "rsm_intr_signal_post",
    "rsm_intr_signal_wait",
    "rsm_memseg_get_pollfd",
    "rsm_memseg_release_pollfd",
    "rsm_intr_signal_wait_pollfd",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// All of rsm-core's sources, concatenated per file.
fn core_sources() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root().join("rsm-core/src")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).expect("rsm-core/src is readable") {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = fs::read_to_string(&p).expect("source is UTF-8");
                out.push((p, text));
            }
        }
    }
    out
}

/// Rows of the README table: (C name, Rust name, status, test file).
fn table_rows() -> Vec<(String, String, String, String)> {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md is readable");
    let cell = |s: &str| s.trim().trim_matches('`').to_string();
    readme
        .lines()
        .filter(|l| l.starts_with("| `rsm_"))
        .map(|l| {
            let cols: Vec<&str> = l.trim_matches('|').split('|').collect();
            assert_eq!(cols.len(), 4, "README API row needs 4 columns: {l}");
            (cell(cols[0]), cell(cols[1]), cell(cols[2]), cell(cols[3]))
        })
        .collect()
}

#[test]
fn readme_lists_each_of_the_42_functions_once() {
    let rows = table_rows();
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "a function is listed twice");
    let expected: BTreeSet<&str> = FUNCTIONS.iter().copied().collect();
    assert_eq!(
        unique, expected,
        "README API table differs from the 42 functions"
    );
}

#[test]
fn every_row_points_at_real_code_and_a_real_test() {
    let sources = core_sources();
    for (c, rust, status, test) in table_rows() {
        // The Rust column is `Rsm::method` (or `capi::fn`); the last path segment is the fn.
        let method = rust
            .rsplit("::")
            .next()
            .unwrap_or(&rust)
            .trim_end_matches("()");
        let alias = format!("#[doc(alias = \"{c}\")]");
        let found = sources.iter().any(|(_, text)| {
            text.match_indices(&alias).any(|(at, _)| {
                // The aliased item follows within a few lines.
                let after: String = text[at..].lines().take(4).collect::<Vec<_>>().join("\n");
                after.contains(&format!("fn {method}"))
            })
        });
        assert!(found, "{c}: no `fn {method}` carrying {alias} in rsm-core");
        assert_eq!(status, "done", "{c}: status column");
        let path = root().join(&test);
        let text = fs::read_to_string(&path).unwrap_or_else(|_| panic!("{c}: missing {test}"));
        assert!(
            text.contains(&format!(".{method}(")) || text.contains(&c),
            "{c}: {test} never calls `{method}` nor names `{c}`"
        );
    }
}
