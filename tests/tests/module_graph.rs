//! rsm-core's modules form no import cycle (issue 9 §2).
//!
//! Reads every source file of `rsm-core/src` (except `lib.rs`, which only declares modules and
//! re-exports), takes its top-level module (`proto/channel.rs` belongs to `proto`), and records
//! an edge to every other top-level module it names with a `crate::…` path in code — in `use`
//! declarations (also inside `use crate::{a, b::c}` groups) and in inline paths; comments and
//! the `#[cfg(test)] mod …` tail of a file are not code that shapes the layering. The graph must
//! be acyclic; on failure the test prints one cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read rsm-core/src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Identifiers following `crate::` in `code`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
            let mut depth = 0usize;
            let mut item_start = true;
            for (k, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[k..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        let id: String = group[k..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        out.push(id);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let id: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push(id);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rsm-core/src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let first = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("utf-8 path")
            .trim_end_matches(".rs")
            .to_string();
        if first == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read source");
        let text = match text.find("#[cfg(test)]\nmod ") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        // Join the lines without their comments, so multi-line `use` groups stay whole.
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let deps = g.entry(first.clone()).or_default();
        for m in crate_paths(&code) {
            // Items re-exported at the crate root (`crate::Rsm`, `crate::OpId`) are not
            // modules; module names are lower case.
            if m != first && m.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                deps.insert(m);
            }
        }
    }
    g
}

/// A cycle of `g`, if any (depth-first search).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        v: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(v.to_string(), 1);
        stack.push(v.to_string());
        for w in g.get(v).into_iter().flatten() {
            match state.get(w.as_str()).copied().unwrap_or(0) {
                0 => {
                    if let Some(c) = visit(w, g, state, stack) {
                        return Some(c);
                    }
                }
                1 => {
                    let at = stack.iter().position(|s| s == w).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(w.clone());
                    return Some(c);
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(v.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for v in g.keys() {
        if state.get(v.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(v, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_module_graph_of_rsm_core_is_acyclic() {
    let g = graph();
    // The graph was really read: the node layer and the engine are in it, with their edges.
    assert!(g
        .get("net")
        .is_some_and(|d| d.contains("node") && d.contains("proto")));
    assert!(g.get("node").is_some_and(|d| d.contains("proto")));
    if let Some(c) = find_cycle(&g) {
        panic!(
            "import cycle in rsm-core: {}\ngraph: {g:#?}",
            c.join(" -> ")
        );
    }
    // The engine's state and the wire format depend on nothing of the node.
    for leaf in ["proto", "wire", "sg", "op", "acl"] {
        let deps = &g[leaf];
        assert!(
            !deps.contains("node") && !deps.contains("ops") && !deps.contains("net"),
            "{leaf} depends on the node layer: {deps:?}"
        );
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let edge = |g: &mut BTreeMap<String, BTreeSet<String>>, a: &str, b: &str| {
        g.entry(a.into()).or_default().insert(b.into());
    };
    edge(&mut g, "node", "ops");
    edge(&mut g, "ops", "proto");
    assert_eq!(find_cycle(&g), None);
    edge(&mut g, "proto", "node");
    let c = find_cycle(&g).expect("a cycle");
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4);
    assert_eq!(
        crate_paths("use crate::{a, b::c, d::{e, f}};\nlet x = crate::g::h();"),
        ["a", "b", "d", "g"]
    );
}
