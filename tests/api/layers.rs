//! The crate's layers point one way: `http` → `realtime` → `protocol` → `domain`, with `db`
//! below. Read from the source itself (every `use` and every path that starts at `crate`),
//! so an import across a wall fails here rather than in a reviewer's head.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use syn::visit::Visit;

/// The top-level modules (`crate::X`) one file refers to, and whether it climbs out of its
/// own module with `super::super`.
#[derive(Default)]
struct CrateRefs {
    modules: BTreeSet<String>,
    climbs: bool,
}

impl CrateRefs {
    /// Records the module a `use` tree that starts at `crate` names (each branch of a group).
    fn note_crate_branch(&mut self, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                self.modules.insert(p.ident.to_string());
            }
            syn::UseTree::Name(n) => {
                self.modules.insert(n.ident.to_string());
            }
            syn::UseTree::Rename(r) => {
                self.modules.insert(r.ident.to_string());
            }
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.note_crate_branch(t)),
            syn::UseTree::Glob(_) => {
                self.modules.insert("*".to_owned());
            }
        }
    }

    /// Walks a `use` tree from its root.
    fn note_use(&mut self, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) if p.ident == "crate" => self.note_crate_branch(&p.tree),
            syn::UseTree::Path(p) if p.ident == "super" => {
                if matches!(&*p.tree, syn::UseTree::Path(q) if q.ident == "super") {
                    self.climbs = true;
                }
            }
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.note_use(t)),
            _ => {}
        }
    }
}

impl<'ast> Visit<'ast> for CrateRefs {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.note_use(&item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments = path.segments.iter();
        match (segments.next(), segments.next()) {
            (Some(first), Some(second)) if first.ident == "crate" => {
                self.modules.insert(second.ident.to_string());
            }
            (Some(first), Some(second)) if first.ident == "super" && second.ident == "super" => {
                self.climbs = true;
            }
            _ => {}
        }
        syn::visit::visit_path(self, path);
    }
}

/// The crate modules `file` refers to.
fn refs_of(file: &Path) -> CrateRefs {
    let text = std::fs::read_to_string(file).expect("readable source");
    let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut refs = CrateRefs::default();
    refs.visit_file(&ast);
    refs
}

/// Every `.rs` file under `dir`, its submodules' folders included.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            files.push(path);
        }
    }
    files
}

fn src(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel)
}

/// Fails listing every file in `files` that refers to one of `forbidden`.
fn assert_none_refer_to(files: &[PathBuf], forbidden: &[&str], rule: &str) {
    let mut broken = Vec::new();
    for file in files {
        let refs = refs_of(file);
        let crossing: Vec<&String> = refs
            .modules
            .iter()
            .filter(|m| forbidden.contains(&m.as_str()) || m.as_str() == "*")
            .collect();
        if !crossing.is_empty() || refs.climbs {
            broken.push(format!("{}: {crossing:?}", file.display()));
        }
    }
    assert!(
        broken.is_empty(),
        "{rule}; these files cross it:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_realtime_core_never_imports_the_http_layer_or_the_server_state() {
    let files = rust_files(&src("realtime"));
    assert!(files.len() >= 8, "found the realtime files: {files:?}");
    assert_none_refer_to(
        &files,
        &["http", "startup", "cli", "tls"],
        "src/realtime/ must not use crate::http (its state included) or crate::startup",
    );
}

#[test]
fn the_wire_protocol_and_the_domain_vocabulary_stand_on_their_own() {
    assert_none_refer_to(
        &[src("realtime/protocol.rs")],
        &["db", "http", "startup"],
        "protocol.rs speaks the domain vocabulary, never the database or HTTP",
    );
    assert_none_refer_to(
        &[src("domain.rs")],
        &["db", "http", "realtime", "startup", "error"],
        "domain.rs depends on no layer",
    );
}

#[test]
fn the_database_layer_never_reaches_up() {
    let files = rust_files(&src("db"));
    assert_none_refer_to(
        &files,
        &["http", "realtime", "startup"],
        "src/db/ is below every other layer",
    );
}
