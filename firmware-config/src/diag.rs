//! Diagnostics: where a configuration problem is, and what it is.
//!
//! Every configuration file is reported on in the same shape, a [`Problem`]
//! with the file, the 1-based line, the dotted key path (for example
//! `cameras[2].rules[0].zone`) and a message. [`Problems`] is the error type
//! of every loader in this crate and always holds at least one problem.
//!
//! [`load_toml`] reads a TOML file into any serde type and guarantees:
//! - a syntax error is one problem with its line;
//! - every unknown key is reported (not just the first): each time serde
//!   rejects a key, the key is taken out of the parsed tree and
//!   deserialization is retried, so one file with three typos yields three
//!   problems;
//! - a value of the wrong type is reported once, at the value's line, and
//!   the "missing field" that removing it would cause is not reported again;
//! - on success the returned [`SourceMap`] turns any key path into a line,
//!   so the semantic validation passes that run afterwards report the same
//!   way.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One fault in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file the fault is in.
    pub file: PathBuf,
    /// 1-based line of the key (or value) at fault; 0 when unknown.
    pub line: usize,
    /// Dotted key path, e.g. `cameras[2].rules[0].zone`; empty for the whole file.
    pub key: String,
    /// What is wrong, in words a site engineer can act on.
    pub message: String,
}

impl Problem {
    /// A problem about a whole file (line 0, no key), e.g. "cannot read".
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: 0,
            key: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() { "-" } else { &self.key };
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            key,
            self.message
        )
    }
}

/// Every problem found in one load or check, in file then line order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Sorts by file, line and key, so reports are stable.
    pub fn sorted(mut self) -> Self {
        self.0
            .sort_by(|a, b| (&a.file, a.line, &a.key).cmp(&(&b.file, b.line, &b.key)));
        self
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl From<Problem> for Problems {
    fn from(p: Problem) -> Self {
        Problems(vec![p])
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key_span: Option<Range<usize>>,
    value_span: Range<usize>,
}

/// Maps key paths of one parsed file to their lines.
///
/// Built from the parsed document, so it knows every key that is present.
/// For a key that is absent (a defaulted field), [`SourceMap::line`] falls
/// back to the nearest present parent, which is where a user would add it.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    file: PathBuf,
    line_starts: Vec<usize>,
    entries: HashMap<String, Entry>,
}

impl SourceMap {
    /// A map that knows the file but no keys (line 0 for everything).
    pub fn empty(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            line_starts: vec![0],
            entries: HashMap::new(),
        }
    }

    /// Builds the map for `text` (the file's contents), parsed as `root`.
    fn build(file: &Path, text: &str, root: &DeTable<'_>) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let mut map = Self {
            file: file.to_path_buf(),
            line_starts,
            entries: HashMap::new(),
        };
        map.walk_table("", root);
        map
    }

    fn walk_table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (k, v) in table.iter() {
            let path = join_key(prefix, k.get_ref());
            self.entries.insert(
                path.clone(),
                Entry {
                    key_span: Some(k.span()),
                    value_span: v.span(),
                },
            );
            self.walk_value(&path, v);
        }
    }

    fn walk_value(&mut self, path: &str, v: &Spanned<DeValue<'_>>) {
        match v.get_ref() {
            DeValue::Table(t) => self.walk_table(path, t),
            DeValue::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    self.entries.insert(
                        p.clone(),
                        Entry {
                            key_span: None,
                            value_span: e.span(),
                        },
                    );
                    self.walk_value(&p, e);
                }
            }
            _ => {}
        }
    }

    /// The file this map describes.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// 1-based line of a byte offset in the file.
    pub fn line_of_offset(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// Whether the key path is present in the file.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The line of `key` (its key if it has one, else its value, e.g. an
    /// array element); for an absent key, the line of its nearest present
    /// parent; 0 if nothing is known.
    pub fn line(&self, key: &str) -> usize {
        let mut k = key;
        loop {
            if let Some(e) = self.entries.get(k) {
                let at = e.key_span.as_ref().map_or(e.value_span.start, |s| s.start);
                return self.line_of_offset(at);
            }
            match parent_key(k) {
                Some(p) => k = p,
                None => return 0,
            }
        }
    }

    /// The line of `key`'s value (e.g. one element of a polygon) or of the
    /// key itself when that is more precise; falls back like [`Self::line`].
    pub fn value_line(&self, key: &str) -> usize {
        match self.entries.get(key) {
            Some(e) => self.line_of_offset(e.value_span.start),
            None => self.line(key),
        }
    }

    /// A problem at `key` in this file.
    pub fn problem(&self, key: impl Into<String>, message: impl Into<String>) -> Problem {
        self.problem_on(Self::line, key.into(), message.into())
    }

    /// A problem at the value of `key` (see [`Self::value_line`]).
    pub fn value_problem(&self, key: impl Into<String>, message: impl Into<String>) -> Problem {
        self.problem_on(Self::value_line, key.into(), message.into())
    }

    /// A problem at `key`, on the line that `line` finds for it.
    fn problem_on(&self, line: fn(&Self, &str) -> usize, key: String, message: String) -> Problem {
        Problem {
            file: self.file.clone(),
            line: line(self, &key),
            key,
            message,
        }
    }

    /// The key path whose key or value occupies `span`: an exact key span
    /// first, then the deepest value with exactly that span, then the
    /// deepest value containing it.
    fn path_for_span(&self, span: &Range<usize>) -> Option<String> {
        if let Some((k, _)) = self
            .entries
            .iter()
            .find(|(_, e)| e.key_span.as_ref() == Some(span))
        {
            return Some(k.clone());
        }
        let deepest = |it: &mut dyn Iterator<Item = (&String, &Entry)>| {
            it.max_by_key(|(k, e)| {
                (
                    usize::MAX - (e.value_span.end - e.value_span.start),
                    k.len(),
                )
            })
            .map(|(k, _)| k.clone())
        };
        let mut exact = self.entries.iter().filter(|(_, e)| &e.value_span == span);
        if let Some(k) = deepest(&mut exact) {
            return Some(k);
        }
        let mut containing = self
            .entries
            .iter()
            .filter(|(_, e)| e.value_span.start <= span.start && span.end <= e.value_span.end);
        deepest(&mut containing)
    }
}

/// Appends `key` to a dotted path, quoting it if it is not a bare key.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// The parent of a key path: `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> none.
fn parent_key(key: &str) -> Option<&str> {
    if key.is_empty() {
        return None;
    }
    if key.ends_with(']') {
        return key.rfind('[').map(|i| &key[..i]);
    }
    // A quoted last segment may contain dots; find the segment start outside quotes.
    let mut in_quotes = false;
    let mut cut = None;
    let bytes = key.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_quotes = !in_quotes,
            b'.' if !in_quotes => cut = Some(i),
            _ => {}
        }
    }
    Some(cut.map_or("", |i| &key[..i]))
}

/// Splits a key path into segments: `a.b[2].c` -> `a`, `b`, `[2]`, `c`.
fn segments(key: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = key;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            if let Ok(i) = r[..end].parse() {
                out.push(Segment::Index(i));
            }
            rest = r.get(end + 1..).unwrap_or("");
            continue;
        }
        if rest.starts_with('"') {
            // Quoted key as written by join_key (Rust debug quoting).
            let mut end = 1;
            let bytes = rest.as_bytes();
            while end < bytes.len() && !(bytes[end] == b'"' && bytes[end - 1] != b'\\') {
                end += 1;
            }
            let quoted = &rest[1..end.min(rest.len())];
            out.push(Segment::Key(
                quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
            ));
            rest = rest.get(end + 1..).unwrap_or("");
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        out.push(Segment::Key(rest[..end].to_owned()));
        rest = &rest[end..];
    }
    out
}

enum Segment {
    Key(String),
    Index(usize),
}

/// Removes the entry at `key` from the parsed tree; true if it was there.
fn remove_path(root: &mut DeTable<'_>, key: &str) -> bool {
    let segs = segments(key);
    remove_in_table(root, &segs)
}

fn remove_in_table(table: &mut DeTable<'_>, segs: &[Segment]) -> bool {
    match segs {
        [Segment::Key(k)] => table.remove(k.as_str()).is_some(),
        [Segment::Key(k), rest @ ..] => match table.get_mut(k.as_str()) {
            Some(v) => remove_in_value(v.get_mut(), rest),
            None => false,
        },
        _ => false,
    }
}

fn remove_in_value(value: &mut DeValue<'_>, segs: &[Segment]) -> bool {
    match (value, segs.first()) {
        (DeValue::Table(t), Some(Segment::Key(_))) => remove_in_table(t, segs),
        (DeValue::Array(a), Some(Segment::Index(i))) => match a.get_mut(*i) {
            Some(e) => remove_in_value(e.get_mut(), &segs[1..]),
            None => false,
        },
        _ => false,
    }
}

/// Reads and parses a TOML file into `T`, reporting every unknown key and
/// every value of the wrong type, each with its line and key.
///
/// `T` should use `#[serde(deny_unknown_fields)]` on every struct, so that
/// typos are caught. The returned [`SourceMap`] serves later validation.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<(T, SourceMap), Problems> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problem::file(path, format!("cannot read: {e}")))?;
    parse_toml(path, &text)
}

/// Like [`load_toml`], for text already in memory; `path` names it in problems.
pub fn parse_toml<T: DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<(T, SourceMap), Problems> {
    let parsed = parse_lenient::<T>(path, text);
    match parsed.value {
        Some(v) if parsed.problems.is_empty() => Ok((v, parsed.map)),
        _ if parsed.problems.is_empty() => {
            Err(Problem::file(path, "could not be read as configuration").into())
        }
        _ => Err(Problems(parsed.problems)),
    }
}

/// The outcome of a tolerant parse: the value read with the faulty keys
/// taken out (if that succeeded), the problems, and which key paths were
/// taken out, so that later passes can stay quiet about them.
pub(crate) struct Lenient<T> {
    pub value: Option<T>,
    pub map: SourceMap,
    pub problems: Vec<Problem>,
    pub removed: Vec<String>,
}

/// Whether `key` is `prefix` or lies inside it.
pub(crate) fn is_under(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// The nearest key (not an array element) that owns `key`, itself included.
fn owning_key(key: &str) -> &str {
    let mut k = key;
    while k.ends_with(']') {
        match parent_key(k) {
            Some(p) => k = p,
            None => break,
        }
    }
    k
}

/// Parses `text`, taking out each faulty key and retrying, so that every
/// independent fault is reported once. See the module docs.
pub(crate) fn parse_lenient<T: DeserializeOwned>(path: &Path, text: &str) -> Lenient<T> {
    let mut root = match DeTable::parse(text) {
        Ok(r) => r,
        Err(e) => {
            let map = SourceMap::build(path, text, &DeTable::new());
            let line = e.span().map_or(0, |s| map.line_of_offset(s.start));
            let problem = Problem {
                file: path.to_path_buf(),
                line,
                key: String::new(),
                message: format!("TOML syntax: {}", e.message().trim()),
            };
            return Lenient {
                value: None,
                map,
                problems: vec![problem],
                removed: Vec::new(),
            };
        }
    };
    let map = SourceMap::build(path, text, root.get_ref());
    let mut out = Lenient {
        value: None,
        map: SourceMap::empty(path),
        problems: Vec::new(),
        removed: Vec::new(),
    };
    // Each round either succeeds or takes one more key out; bound it anyway.
    for _ in 0..=map.entries.len() {
        let err = match T::deserialize(toml::de::Deserializer::from(root.clone())) {
            Ok(v) => {
                out.value = Some(v);
                break;
            }
            Err(e) => e,
        };
        let message = err.message().trim().to_owned();
        let at = err
            .span()
            .and_then(|s| map.path_for_span(&s).map(|p| (p, s)));
        let take_out = if let Some(field) = missing_field_name(&message) {
            // The table lacks a required key. Unless that is because we took
            // the key out (already reported), report it; then take out the
            // table (or the list it is an element of) to look further.
            let table = at.map(|(p, _)| p).unwrap_or_default();
            let key = join_key(&table, field);
            if !out.removed.iter().any(|r| is_under(&key, r)) {
                out.problems.push(map.problem(key, message));
            }
            owning_key(&table).to_owned()
        } else if let Some((key, span)) = at {
            out.problems.push(Problem {
                file: path.to_path_buf(),
                line: map.line_of_offset(span.start),
                key: key.clone(),
                message,
            });
            owning_key(&key).to_owned()
        } else {
            out.problems.push(Problem {
                file: path.to_path_buf(),
                line: 0,
                key: String::new(),
                message,
            });
            break;
        };
        if take_out.is_empty() || !remove_path(root.get_mut(), &take_out) {
            break;
        }
        out.removed.push(take_out);
    }
    out.map = map;
    out
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.find('`').map(|i| &rest[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only through Debug
    struct Root {
        name: String,
        #[serde(default)]
        port: u16,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // read only through Debug
    struct Item {
        id: String,
        #[serde(default)]
        size: u32,
    }

    fn parse(text: &str) -> Result<(Root, SourceMap), Problems> {
        parse_toml(Path::new("t.toml"), text)
    }

    #[test]
    fn reports_every_unknown_key_with_line_and_path() {
        let text = "name = \"a\"\nnmae = 1\n\n[[items]]\nid = \"x\"\nsiez = 3\n[[items]]\nid = \"y\"\ncolour = 1\n";
        let errs = parse(text).err().map(|p| p.0).unwrap_or_default();
        let got: Vec<_> = errs.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(got.len(), 3, "{errs:?}");
        assert!(got.contains(&(2, "nmae")));
        assert!(got.contains(&(6, "items[0].siez")));
        assert!(got.contains(&(9, "items[1].colour")));
    }

    #[test]
    fn quoted_unknown_keys_are_reported_and_taken_out() {
        let text = "name = \"a\"\n\"size of.it\" = 1\n\"名称\" = 2\n";
        let errs = parse(text).err().map(|p| p.0).unwrap_or_default();
        let got: Vec<_> = errs.iter().map(|p| (p.line, p.key.as_str())).collect();
        assert_eq!(
            got,
            vec![(2, "\"size of.it\""), (3, "\"名称\"")],
            "{errs:?}"
        );
    }

    #[test]
    fn wrong_type_of_required_key_is_one_problem() {
        let errs = parse("name = 3\n").err().map(|p| p.0).unwrap_or_default();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].key.as_str()), (1, "name"));
        assert!(
            errs[0].message.contains("invalid type"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn missing_field_points_at_its_table() {
        let errs = parse("name = \"n\"\n[[items]]\nsize = 1\n")
            .err()
            .map(|p| p.0)
            .unwrap_or_default();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].key.as_str()), (2, "items[0].id"));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let errs = parse("name = \"n\"\nport = = 3\n")
            .err()
            .map(|p| p.0)
            .unwrap_or_default();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].message.starts_with("TOML syntax"));
    }

    #[test]
    fn source_map_lines_fall_back_to_parent() {
        let (_, map) =
            parse("name = \"n\"\n\n[[items]]\nid = \"a\"\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(map.line("items[0].id"), 4);
        assert_eq!(map.line("items[0].size"), 3);
        assert_eq!(map.line("port"), 0);
        assert_eq!(map.line("name"), 1);
    }

    #[test]
    fn display_is_file_line_key_message() {
        let p = Problem {
            file: "a/b.toml".into(),
            line: 7,
            key: "cameras[0].url".into(),
            message: "bad".into(),
        };
        assert_eq!(p.to_string(), "a/b.toml:7: cameras[0].url: bad");
    }
}
