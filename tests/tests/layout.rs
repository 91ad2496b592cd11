//! The code's layout holds:
//!
//! * no import circle between the modules of one crate (proto, server,
//!   client library, client binary): if module A refers to module B, B
//!   does not refer back to A, directly or through others. A module and
//!   its own ancestors are left out (a layer's `mod.rs` dispatches to its
//!   files, which use the types it defines: that is the shape of a
//!   layer, not a circle);
//! * the server's layers depend only downwards: endpoint → requests →
//!   store → domain, with the log under the store, and the domain depends
//!   on nothing else of the server.
//!
//! Run it alone with `cargo test -p hotline-tests --test layout`; it
//! prints every edge of a circle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// The modules of the crate whose root file is `root`, by path, with the
/// source of each: found by following `mod x;` declarations, as rustc
/// does.
fn modules(root: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    walk(root, Vec::new(), &mut out);
    out
}

fn walk(file: &Path, path: Module, out: &mut BTreeMap<Module, String>) {
    let source =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    // Children of `lib.rs`, `main.rs` or `x/mod.rs` live beside it;
    // children of `x.rs` live in `x/`.
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let dir = if matches!(name, "lib.rs" | "main.rs" | "mod.rs") {
        file.parent().map(Path::to_path_buf)
    } else {
        file.parent().map(|p| p.join(name.trim_end_matches(".rs")))
    }
    .expect("a parent directory");
    for line in source.lines() {
        let line = line.trim();
        let decl = line
            .strip_prefix("pub(crate) mod ")
            .or_else(|| line.strip_prefix("pub(super) mod "))
            .or_else(|| line.strip_prefix("pub mod "))
            .or_else(|| line.strip_prefix("mod "));
        let Some(child) = decl.and_then(|d| d.strip_suffix(';')) else {
            continue;
        };
        let mut child_path = path.clone();
        child_path.push(child.to_owned());
        let flat = dir.join(format!("{child}.rs"));
        let nested = dir.join(child).join("mod.rs");
        let child_file: PathBuf = if flat.exists() { flat } else { nested };
        walk(&child_file, child_path, out);
    }
    out.insert(path, source);
}

/// The module a path written in `from` names: `crate::a::b::Item`,
/// `super::a::Item` or `self::a::Item`, resolved to the longest prefix
/// that is a module of the crate.
fn resolve(from: &Module, path: &str, known: &BTreeMap<Module, String>) -> Option<Module> {
    let mut segments = path.split("::");
    let mut base: Module = match segments.next()? {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => {
            let mut p = from.clone();
            p.pop()?;
            p
        }
        _ => return None,
    };
    let mut best = base.clone();
    for s in segments {
        if s == "super" {
            base.pop();
            best = base.clone();
            continue;
        }
        base.push(s.to_owned());
        if known.contains_key(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    Some(best)
}

/// Every module each module refers to, leaving out its ancestors and
/// descendants.
fn edges(known: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut out: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, source) in known {
        let code: String = source
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let bytes = code.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &code[i..];
            let starts = ["crate::", "super::", "self::"]
                .iter()
                .any(|p| rest.starts_with(p));
            let boundary =
                i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            if starts && boundary {
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                let path = rest[..len].trim_end_matches(':');
                if let Some(target) = resolve(module, path, known) {
                    let related = target.starts_with(module) || module.starts_with(&target);
                    if !related {
                        out.entry(module.clone()).or_default().insert(target);
                    }
                }
                i += len.max(1);
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    out
}

/// The circles in `graph`, each as the list of its modules.
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    // Tarjan's strongly connected components; a component of more than
    // one module is a circle.
    struct Walk<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        next: usize,
        found: Vec<Vec<Module>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, m: &'a Module) {
            self.index.insert(m, self.next);
            self.low.insert(m, self.next);
            self.next += 1;
            self.stack.push(m);
            self.on_stack.insert(m);
            if let Some(targets) = self.graph.get(m) {
                for t in targets {
                    if !self.index.contains_key(t) {
                        self.visit(t);
                        let low = self.low[t].min(self.low[m]);
                        self.low.insert(m, low);
                    } else if self.on_stack.contains(t) {
                        let low = self.index[t].min(self.low[m]);
                        self.low.insert(m, low);
                    }
                }
            }
            if self.low[m] == self.index[m] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top.clone());
                    if top == m {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    let all: BTreeSet<&Module> = graph.keys().chain(graph.values().flatten()).collect();
    for m in all {
        if !walk.index.contains_key(m) {
            walk.visit(m);
        }
    }
    walk.found
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn assert_no_circle(root: &str) {
    let known = modules(&workspace().join(root));
    assert!(known.len() > 1, "{root}: no modules found");
    let graph = edges(&known);
    let found = circles(&graph);
    let report: Vec<String> = found
        .iter()
        .map(|c| {
            let set: BTreeSet<&Module> = c.iter().collect();
            let mut lines = Vec::new();
            for m in c {
                for t in graph.get(m).into_iter().flatten() {
                    if set.contains(t) {
                        lines.push(format!("  {} -> {}", name(m), name(t)));
                    }
                }
            }
            lines.join("\n")
        })
        .collect();
    assert!(
        found.is_empty(),
        "{root}: modules that import each other in a circle:\n{}",
        report.join("\n\n")
    );
}

#[test]
fn no_import_circle_in_the_protocol_crate() {
    assert_no_circle("proto/src/lib.rs");
}

#[test]
fn no_import_circle_in_the_server() {
    assert_no_circle("server/src/lib.rs");
}

#[test]
fn no_import_circle_in_the_client() {
    assert_no_circle("client/src/lib.rs");
    assert_no_circle("client/src/main.rs");
}

/// What each top-level module of the server may use: the data path reads
/// top to bottom.
#[test]
fn the_server_layers_depend_only_downwards() {
    let may_use: BTreeMap<&str, &[&str]> = [
        (
            "endpoint",
            &["requests", "store", "domain", "log", "config", "files"][..],
        ),
        ("requests", &["store", "domain", "config"][..]),
        ("store", &["domain", "log", "files"][..]),
        ("log", &["files"][..]),
        ("domain", &[][..]),
        ("config", &["domain", "log"][..]),
        ("files", &[][..]),
        ("logging", &[][..]),
    ]
    .into_iter()
    .collect();
    let known = modules(&workspace().join("server/src/lib.rs"));
    let layers: BTreeSet<&str> = known
        .keys()
        .filter_map(|m| m.first().map(String::as_str))
        .collect();
    for layer in &layers {
        assert!(
            may_use.contains_key(layer),
            "a new top-level module {layer}: say which layers it may use"
        );
    }
    let mut wrong = Vec::new();
    for (from, targets) in edges(&known) {
        let (Some(a), true) = (from.first(), true) else {
            continue;
        };
        for to in targets {
            let Some(b) = to.first() else { continue };
            if a != b && !may_use[a.as_str()].contains(&b.as_str()) {
                wrong.push(format!("  {} -> {}", name(&from), name(&to)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "server modules that use a layer above them:\n{}",
        wrong.join("\n")
    );
}
