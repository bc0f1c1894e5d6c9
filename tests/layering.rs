//! The module graph points down: every `crate::` path in `src/` names a
//! module on a lower line of the layer table in ARCHITECTURE.md ("Layers")
//! than the module it appears in. A module may use its own submodules and
//! anything below it, never a peer on its own line or anything above.
//!
//! Pure logic: reads the source as text, runs anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer table: the fenced ```layers block of ARCHITECTURE.md, top
/// line first. Returns each module's rank (0 = bottom).
fn layers(architecture: &str) -> BTreeMap<String, usize> {
    let start = architecture.find("```layers\n").expect("ARCHITECTURE.md has a ```layers block") + 10;
    let block = &architecture[start..];
    let block = &block[..block.find("```").expect("the ```layers block is closed")];
    let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut rank = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        for module in line.split_whitespace() {
            let previous = rank.insert(module.to_owned(), lines.len() - 1 - i);
            assert!(previous.is_none(), "{module} is on two lines of the layer table");
        }
    }
    rank
}

/// Source text without comments (so doc links and prose may name any
/// module) and without string literals.
fn code_only(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' && !(i > 0 && (b[i - 1] == b'\'' || b[i - 1] == b'#' || b[i - 1] == b'r')) {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if b[i..].starts_with(b"r#\"") {
            i += 3;
            while i < b.len() && !b[i..].starts_with(b"\"#") {
                i += 1;
            }
            i += 2;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a file's code reaches through `crate::…`,
/// `crate::{a, b::c}` and `super::` chains that climb to the crate root.
/// `module_path` is the file's module path (`["ops", "image", "import"]`);
/// since inline modules (`mod tests`) add depth the path does not show, a
/// `super::` chain counts only when it names a top-level module in `rank`.
fn referenced(code: &str, module_path: &[String], rank: &BTreeMap<String, usize>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 7..];
        if matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` in macros, or `somecrate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if depth == 1 && item_start => {
                        item_start = false;
                        let name = ident(&group[i..]);
                        if !name.is_empty() && name != "self" {
                            found.insert(name.to_owned());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name.to_owned());
            }
        }
    }
    // `super::super::x` from deep enough reaches the crate root.
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let mut chain = &rest[at..];
        let mut ups = 0;
        while let Some(r) = chain.strip_prefix("super::") {
            ups += 1;
            chain = r;
        }
        rest = chain;
        if ups >= module_path.len() {
            let name = ident(chain);
            if rank.contains_key(name) {
                found.insert(name.to_owned());
            }
        }
    }
    found
}

/// The module path of a file under `src/`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every upward or sideways import, as `file: module -> target`.
fn violations(rank: &BTreeMap<String, usize>, files: &[(PathBuf, Vec<String>, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (file, path, src) in files {
        let Some(top) = path.first() else { continue };
        if top == "lib" || top == "main" || top == "bin" {
            continue; // the crate root declares every module; binaries are thin
        }
        let Some(&own) = rank.get(top) else {
            bad.push(format!("{}: module {top} is not in ARCHITECTURE.md's layer table", file.display()));
            continue;
        };
        for target in referenced(&code_only(src), path, rank) {
            if &target == top {
                continue;
            }
            match rank.get(&target) {
                Some(&r) if r < own => {}
                Some(_) => bad.push(format!("{}: {top} imports {target}, which is not below it", file.display())),
                None => bad.push(format!("{}: {top} names crate::{target}, not in the layer table", file.display())),
            }
        }
    }
    bad
}

#[test]
fn every_crate_path_points_down_the_layer_table() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rank = layers(&std::fs::read_to_string(manifest.join("ARCHITECTURE.md")).unwrap());
    let src = manifest.join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files: Vec<_> = paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let module = module_path(&src, &p);
            (p, module, text)
        })
        .collect();
    assert!(files.len() > 100, "read only {} files under {}", files.len(), src.display());
    // Every top-level module of the crate is placed in the table.
    let declared: BTreeSet<String> = files.iter().filter_map(|(_, m, _)| m.first().cloned()).collect();
    for m in declared.iter().filter(|m| *m != "lib" && *m != "main" && *m != "bin") {
        assert!(rank.contains_key(m), "module {m} is not in ARCHITECTURE.md's layer table");
    }
    let bad = violations(&rank, &files);
    assert!(bad.is_empty(), "imports that do not point down:\n{}", bad.join("\n"));
}

/// The check itself can fail: an upward path, a peer path, a path hidden
/// in a `use crate::{…}` group and one reached by `super::super::` are all
/// caught; comments and strings are not code.
#[test]
fn the_layering_check_catches_upward_paths() {
    let rank = layers("```layers\ncli\nops engine\nimage\nsys\n```\n");
    let file = |path: &str, src: &str| {
        let module: Vec<String> = path.split('/').map(str::to_owned).collect();
        (PathBuf::from(format!("src/{path}.rs")), module, src.to_owned())
    };
    let ok = vec![
        file("image/store", "use crate::sys::fs;\n// crate::cli::main in a comment\nlet s = \"crate::ops\";"),
        file("ops/image/import", "use crate::{image::store, sys};\nuse super::super::mount;"),
    ];
    assert_eq!(violations(&rank, &ok), Vec::<String>::new());
    let upward = vec![file("image/store", "fn f() { crate::cli::main(); }")];
    assert_eq!(violations(&rank, &upward), ["src/image/store.rs: image imports cli, which is not below it"]);
    let peer = vec![file("engine", "use crate::{\n    image::store::ImageStore,\n    ops::import,\n};")];
    assert_eq!(violations(&rank, &peer), ["src/engine.rs: engine imports ops, which is not below it"]);
    let climbing = vec![file("image/apply/x", "use super::super::super::ops::thing;")];
    assert_eq!(violations(&rank, &climbing), ["src/image/apply/x.rs: image imports ops, which is not below it"]);
    let unknown = vec![file("image/store", "use crate::nowhere::x;")];
    assert_eq!(violations(&rank, &unknown), ["src/image/store.rs: image names crate::nowhere, not in the layer table"]);
}
