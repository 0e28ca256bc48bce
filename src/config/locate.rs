//! Finds the line of a key path in the configuration text, so that every
//! problem can say where it is. toml_edit keeps the spans that serde drops.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, TableLike};

use super::ConfigProblem;

pub struct Locator {
    doc: ImDocument<String>,
    line_starts: Vec<usize>,
}

impl Locator {
    /// Parses `text` for spans; a TOML syntax error becomes the one problem.
    pub fn new(text: &str) -> Result<Locator, ConfigProblem> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect::<Vec<_>>();
        match ImDocument::parse(text.to_string()) {
            Ok(doc) => Ok(Locator { doc, line_starts }),
            Err(e) => {
                let line = e
                    .span()
                    .map(|s| line_of(&line_starts, s.start))
                    .unwrap_or(0);
                Err(ConfigProblem {
                    key: "(syntax)".into(),
                    line,
                    message: e.message().trim().to_string(),
                })
            }
        }
    }

    fn line(&self, offset: usize) -> usize {
        line_of(&self.line_starts, offset)
    }

    /// The line where the key at `path` is written (or its nearest existing parent).
    pub fn line_of_path<S: AsRef<str>>(&self, path: &[S]) -> usize {
        let mut table: &dyn TableLike = self.doc.as_table();
        let mut best = 0;
        let mut segments = path.iter();
        while let Some(segment) = segments.next() {
            let Some((key, item)) = table.get_key_value(segment.as_ref()) else {
                break;
            };
            // `[[rules]]`: the next segment is the table's index.
            if let Item::ArrayOfTables(array) = item {
                let Some(t) = segments
                    .next()
                    .and_then(|i| i.as_ref().parse::<usize>().ok())
                    .and_then(|i| array.get(i))
                else {
                    break;
                };
                if let Some(span) = t.span() {
                    best = self.line(span.start);
                }
                table = t;
                continue;
            }
            if let Some(span) = key.span().or_else(|| item.span()) {
                best = self.line(span.start);
            }
            match item {
                Item::Table(t) => {
                    if let Some(span) = t.span() {
                        if best == 0 {
                            best = self.line(span.start);
                        }
                    }
                    table = t
                }
                Item::Value(toml_edit::Value::InlineTable(t)) => table = t,
                _ => break,
            }
        }
        best
    }

    pub fn problem<S: AsRef<str>>(&self, path: &[S], message: String) -> ConfigProblem {
        ConfigProblem {
            key: path
                .iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join("."),
            line: self.line_of_path(path),
            message,
        }
    }

    pub fn problem_str(&self, path: &[&str], message: String) -> ConfigProblem {
        self.problem(path, message)
    }

    pub fn problem_owned(&self, path: &[String], message: String) -> ConfigProblem {
        self.problem(path, message)
    }

    /// A problem reported by the deserializer at a byte span: find the key there.
    pub fn problem_at_span(&self, span: Option<Range<usize>>, message: &str) -> ConfigProblem {
        let Some(span) = span else {
            return ConfigProblem {
                key: "(file)".into(),
                line: 0,
                message: message.trim().to_string(),
            };
        };
        let mut path = Vec::new();
        key_at(self.doc.as_table(), span.start, &mut path);
        let key = if path.is_empty() {
            "(file)".to_string()
        } else {
            path.join(".")
        };
        ConfigProblem {
            key,
            line: self.line(span.start),
            message: message.trim().to_string(),
        }
    }
}

fn line_of(line_starts: &[usize], offset: usize) -> usize {
    match line_starts.binary_search(&offset) {
        Ok(i) => i + 1,
        Err(i) => i,
    }
}

/// Walks down to the innermost key whose key or value span contains `offset`.
fn key_at(table: &dyn TableLike, offset: usize, path: &mut Vec<String>) {
    for (name, item) in table.iter() {
        let key_span = table.key(name).and_then(|k| k.span());
        let within = |s: Option<Range<usize>>| s.is_some_and(|s| s.contains(&offset));
        let item_span = item.span().or_else(|| match item {
            Item::Table(t) => t.span(),
            _ => None,
        });
        let nested: Option<&dyn TableLike> = match item {
            Item::Table(t) => Some(t as &Table as &dyn TableLike),
            Item::Value(toml_edit::Value::InlineTable(t)) => Some(t),
            _ => None,
        };
        if within(key_span.clone()) || within(item_span.clone()) {
            path.push(name.to_string());
            if let Some(inner) = nested {
                key_at(inner, offset, path);
            }
            return;
        }
        // A [table] header's span does not cover its body: look inside anyway.
        if let Some(inner) = nested {
            let depth = path.len();
            path.push(name.to_string());
            key_at(inner, offset, path);
            if path.len() > depth + 1 {
                return;
            }
            path.truncate(depth);
        }
    }
}

/// Turns serde_ignored's path into key segments.
pub fn path_segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path;
    let mut out = Vec::new();
    fn walk(p: &Path<'_>, out: &mut Vec<String>) {
        match p {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(index.to_string());
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                out.push(key.clone());
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    walk(path, &mut out);
    out
}
