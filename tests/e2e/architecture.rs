//! The floors of docs/architecture.md hold: no part imports from a higher
//! floor, no circle between parts or between files, and every part has a
//! floor. Read from the source text, as ArchUnit keeps layers in Java
//! projects; no dependency needed.
//!
//! Written by hand rather than with a Rust parser crate: what is read is only
//! the paths that start with `crate::`, `super::` or `postwarden::` once
//! comments and string literals are blanked, which a small scanner does
//! exactly, and syn's full parse would add a dependency for nothing more.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The floors table of docs/architecture.md: part → floor.
fn floors() -> BTreeMap<String, u32> {
    let doc =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let mut floors = BTreeMap::new();
    let mut in_table = false;
    for line in doc.lines() {
        if line.starts_with("| floor | parts |") {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Ok(floor) = cells[1].parse::<u32>() else {
                continue; // the |---| line
            };
            for part in cells[2].split(',') {
                floors.insert(part.trim().trim_matches('`').to_string(), floor);
            }
        }
    }
    assert!(
        floors.len() >= 10,
        "no floors table found in docs/architecture.md: {floors:?}"
    );
    floors
}

/// The text with comments and string/char literals replaced by spaces
/// (lines kept), so that only code is searched.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if b[i] == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && !(i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // A raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            j += 1;
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            let end = (j + close.len()).min(b.len());
            for &c in &b[i..end] {
                blank(&mut out, c);
            }
            i = end;
        } else if b[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
            out.push(b' ');
            i += 1;
        } else if b[i] == b'\'' {
            // A char literal ('a', '\n', '\''), not a lifetime ('a).
            let lit = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|p| i + 3 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 3)
            } else {
                // A multi-byte UTF-8 char literal, or a lifetime.
                let ch_len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(i + 2 + ch_len)
            };
            match lit {
                Some(end) if end <= b.len() => {
                    for &c in &b[i..end] {
                        blank(&mut out, c);
                    }
                    i = end;
                }
                _ => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One source file: its path under src/, its part and its module path.
struct File {
    rel: String,
    part: String,
    /// Module path from its crate's root (`store::queue`; `` for a root).
    module: Vec<String>,
    /// The binary's files (`main.rs`, `cli/`): their `crate::` is the binary.
    bin: bool,
    /// The text with comments and literals blanked.
    code: String,
}

fn files() -> Vec<File> {
    let src = root().join("src");
    let mut out = Vec::new();
    let bin_parts = bin_parts();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(&src)
                    .expect("under src")
                    .to_string_lossy()
                    .replace('\\', "/");
                if rel == "lib.rs" {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("source file");
                let mut module: Vec<String> = rel
                    .trim_end_matches(".rs")
                    .split('/')
                    .map(String::from)
                    .collect();
                if module.last().is_some_and(|m| m == "mod") {
                    module.pop();
                }
                if module == ["main"] {
                    module.clear();
                }
                let part = rel
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .trim_end_matches(".rs")
                    .to_string();
                let bin = bin_parts.contains(&part);
                out.push(File {
                    rel,
                    part,
                    module,
                    bin,
                    code: code_only(&text),
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// Byte ranges of inline `mod name {` blocks, where `super::` means the
/// file's own module.
fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut search = 0;
    while let Some(p) = code[search..].find("mod ") {
        let start = search + p;
        search = start + 4;
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
            continue;
        }
        let rest = &code[start + 4..];
        let name_len = rest
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count();
        let after = rest[name_len..].trim_start();
        if name_len == 0 || !after.starts_with('{') {
            continue;
        }
        let open = start + 4 + name_len + (rest[name_len..].len() - after.len());
        let mut depth = 0;
        for (i, &c) in b.iter().enumerate().skip(open) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        out.push((open, i));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// An import: the file, the line and the path it names, from the crate root.
struct Import {
    line: usize,
    /// The path as written (for the message).
    written: String,
    /// Absolute module path in the crate it names (`["store", "queue", "QueueEntry"]`).
    target: Vec<String>,
    /// Whether it names the library from the binary (`postwarden::…`).
    into_lib: bool,
}

fn ident(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

/// `a::b::{c, d::e}` from `i` on: each full path (a group gives several).
fn paths_at(code: &str, mut i: usize) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut prefix = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&b'{') {
            // A group: split its top-level items.
            let mut depth = 0;
            let mut item_start = i + 1;
            let mut out = Vec::new();
            for (j, &c) in b.iter().enumerate().skip(i) {
                match c {
                    b'{' => depth += 1,
                    b'}' | b',' if depth == 1 => {
                        for mut p in paths_at(code, item_start) {
                            let mut full = prefix.clone();
                            full.append(&mut p);
                            out.push(full);
                        }
                        item_start = j + 1;
                        if c == b'}' {
                            return out;
                        }
                    }
                    b'}' => depth -= 1,
                    _ => {}
                }
            }
            return out;
        }
        let n = ident(b, i);
        if n == 0 {
            return if prefix.is_empty() {
                Vec::new()
            } else {
                vec![prefix]
            };
        }
        prefix.push(code[i..i + n].to_string());
        i += n;
        if b[i..].starts_with(b"::") {
            i += 2;
        } else {
            return vec![prefix];
        }
    }
}

fn imports(file: &File) -> Vec<Import> {
    let code = &file.code;
    let b = code.as_bytes();
    let inline = inline_modules(code);
    let mut out = Vec::new();
    for start_word in ["crate::", "super::", "postwarden::"] {
        let mut search = 0;
        while let Some(p) = code[search..].find(start_word) {
            let at = search + p;
            search = at + start_word.len();
            if at > 0
                && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_' || b[at - 1] == b':')
            {
                continue; // part of a longer path (`super::super::`) or name
            }
            let line = code[..at].matches('\n').count() + 1;
            let base: Vec<String> = match start_word {
                "crate::" => Vec::new(),
                "postwarden::" => Vec::new(),
                _ => {
                    if inline.iter().any(|&(s, e)| at > s && at < e) {
                        continue; // an inline module's `super::` is this file
                    }
                    let mut m = file.module.clone();
                    m.pop();
                    m
                }
            };
            for path in paths_at(code, at + start_word.len()) {
                let mut target = base.clone();
                let mut rest = path.clone();
                // `super::super::x` from the file's module.
                while rest.first().is_some_and(|s| s == "super") {
                    target.pop();
                    rest.remove(0);
                }
                target.extend(rest.into_iter().filter(|s| s != "self"));
                out.push(Import {
                    line,
                    written: format!("{start_word}{}", path.join("::")).replace("::self", ""),
                    target,
                    into_lib: start_word == "postwarden::",
                });
            }
        }
    }
    out
}

/// The binary's own parts: `main` and every `mod NAME;` that src/main.rs
/// declares (their `crate::` is the binary, not the library).
fn bin_parts() -> BTreeSet<String> {
    let main = std::fs::read_to_string(root().join("src/main.rs")).expect("src/main.rs");
    let code = code_only(&main);
    let mut parts = BTreeSet::from(["main".to_string()]);
    for line in code.lines() {
        let line = line.trim();
        let line = line.strip_prefix("pub ").unwrap_or(line);
        if let Some(name) = line.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            parts.insert(name.trim().to_string());
        }
    }
    parts
}

/// The file a module path names: its longest prefix that is a file.
fn file_of(
    target: &[String],
    bin: bool,
    bin_parts: &BTreeSet<String>,
    known: &BTreeSet<String>,
) -> Option<String> {
    for n in (1..=target.len()).rev() {
        let stem = target[..n].join("/");
        for candidate in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
            let is_bin_file = bin_parts.contains(&part_of(&candidate));
            if known.contains(&candidate) && is_bin_file == bin {
                return Some(candidate);
            }
        }
    }
    None
}

/// Strongly connected components of more than one node (Tarjan's algorithm).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            if let Some(edges) = self.graph.get(v) {
                for w in edges {
                    let w = w.as_str();
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let low = self.low[v].min(self.low[w]);
                        self.low.insert(v, low);
                    } else if self.on_stack.contains(w) {
                        let low = self.low[v].min(self.index[w]);
                        self.low.insert(v, low);
                    }
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

struct Edge {
    from: String,
    to: String,
    line: usize,
    written: String,
}

/// Every import between two different files of ours, resolved.
fn edges(files: &[File]) -> Vec<Edge> {
    let known: BTreeSet<String> = files.iter().map(|f| f.rel.clone()).collect();
    let bin_parts = bin_parts();
    let mut out = Vec::new();
    for f in files {
        for i in imports(f) {
            let bin = f.bin && !i.into_lib;
            let Some(to) = file_of(&i.target, bin, &bin_parts, &known) else {
                continue; // an external crate's path, or the crate root
            };
            if to != f.rel {
                out.push(Edge {
                    from: f.rel.clone(),
                    to,
                    line: i.line,
                    written: i.written,
                });
            }
        }
    }
    out
}

fn part_of(rel: &str) -> String {
    rel.split('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".rs")
        .to_string()
}

#[test]
fn no_part_imports_from_a_higher_floor() {
    let floors = floors();
    let files = files();
    let parts: BTreeSet<String> = files.iter().map(|f| f.part.clone()).collect();
    let unplaced: Vec<&String> = parts.iter().filter(|p| !floors.contains_key(*p)).collect();
    assert!(
        unplaced.is_empty(),
        "parts without a floor in docs/architecture.md: {unplaced:?}"
    );
    let gone: Vec<&String> = floors.keys().filter(|p| !parts.contains(*p)).collect();
    assert!(
        gone.is_empty(),
        "docs/architecture.md gives floors to parts that are not in src/: {gone:?}"
    );
    let mut upward = Vec::new();
    for e in edges(&files) {
        let (from, to) = (part_of(&e.from), part_of(&e.to));
        if floors[&to] > floors[&from] {
            upward.push(format!(
                "src/{}:{} (`{from}`, floor {}) imports {} from src/{} (`{to}`, floor {})",
                e.from, e.line, floors[&from], e.written, e.to, floors[&to]
            ));
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a higher floor:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_circle_between_parts_or_between_files() {
    let files = files();
    let edges = edges(&files);
    let mut parts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut example: BTreeMap<(String, String), String> = BTreeMap::new();
    for e in &edges {
        let (from, to) = (part_of(&e.from), part_of(&e.to));
        if from != to {
            parts.entry(from.clone()).or_default().insert(to.clone());
            example.entry((from, to)).or_insert_with(|| {
                format!(
                    "src/{}:{} imports {} (src/{})",
                    e.from, e.line, e.written, e.to
                )
            });
        }
        // A folder's mod.rs declares and re-exports its own files: not a
        // dependence on them (the files are its rooms).
        let folder = e.from.trim_end_matches("mod.rs");
        let own_room = e.from.ends_with("mod.rs") && e.to.starts_with(folder)
            || e.from == "main.rs" && e.to.starts_with("cli/") && e.to.ends_with("mod.rs");
        if !own_room {
            by_files
                .entry(e.from.clone())
                .or_default()
                .insert(e.to.clone());
            example
                .entry((e.from.clone(), e.to.clone()))
                .or_insert_with(|| {
                    format!(
                        "src/{}:{} imports {} (src/{})",
                        e.from, e.line, e.written, e.to
                    )
                });
        }
    }
    let mut found = Vec::new();
    for (graph, kind) in [(&parts, "parts"), (&by_files, "files")] {
        for circle in circles(graph) {
            // One way round the circle, shortest first, with the import
            // behind each step.
            let members: BTreeSet<&String> = circle.iter().collect();
            let way = shortest_way_round(graph, &members, &circle[0]);
            let mut lines = vec![format!("a circle of {kind}: {}", way.join(" → "))];
            for step in way.windows(2) {
                lines.push(format!(
                    "  {}",
                    example[&(step[0].clone(), step[1].clone())]
                ));
            }
            found.push(lines.join("\n"));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The shortest path from `start` back to itself within `members`
/// (breadth first), as the list of nodes with `start` at both ends.
fn shortest_way_round(
    graph: &BTreeMap<String, BTreeSet<String>>,
    members: &BTreeSet<&String>,
    start: &String,
) -> Vec<String> {
    let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).into_iter().flatten() {
            if !members.contains(next) {
                continue;
            }
            if next == start {
                let mut way = vec![start.clone()];
                let mut at = node;
                while at != start {
                    way.push(at.clone());
                    at = came_from[at];
                }
                way.push(start.clone());
                way.reverse();
                return way;
            }
            if !came_from.contains_key(next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    vec![start.clone()]
}

/// The scanner itself: it must see what it is meant to see, or the two
/// tests above could pass on a tree full of upward imports.
#[test]
fn the_scanner_reads_paths_and_skips_comments_and_strings() {
    let text = "use crate::store::{Op, queue::QueueEntry};\n// crate::smtp::x\nlet s = \"crate::http::y\"; let c = '\"'; fn f<'a>() { crate::policy::check(); }\nmod tests { use super::*; }\n";
    let file = File {
        rel: "queue/delivery.rs".into(),
        part: "queue".into(),
        module: vec!["queue".into(), "delivery".into()],
        bin: false,
        code: code_only(text),
    };
    let got: Vec<String> = imports(&file).iter().map(|i| i.target.join("::")).collect();
    assert_eq!(
        got,
        ["store::Op", "store::queue::QueueEntry", "policy::check"]
    );
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        circles(&graph),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
}
