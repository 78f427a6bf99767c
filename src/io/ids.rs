//! Lists of samples given on the command line (`--labeled`, `--exclude`,
//! `--init-indices`, `eval --selection`), the names file, and the
//! selection as it is printed.
//!
//! A list is a JSON list (numbers are ids, strings are names) or a text
//! file with one entry per line (ids, or names when `--names` is given);
//! `-` reads it from standard input.
//! Lists are read before the pool and resolved against it once it is
//! loaded, so a malformed file fails at once.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::source::read_whole;
use crate::error::{Error, Result};

/// One entry of a list, and where it stands in its file (for messages).
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Id(usize),
    Name(String),
}

/// A list of samples as read, not yet checked against the pool.
#[derive(Debug, Clone)]
pub struct IdList {
    path: PathBuf,
    /// Each entry with its place: "entry 3" (JSON) or "line 4" (text).
    entries: Vec<(String, Entry)>,
}

impl IdList {
    /// Reads `path`; in a text file, lines are names when `names` is set.
    pub fn read(path: &Path, names: bool) -> Result<IdList> {
        let text = read_text(path)?;
        let trimmed = text.trim_start();
        let entries = if trimmed.starts_with('[') || trimmed.starts_with('{') {
            json_entries(path, &text)?
        } else {
            line_entries(path, &text, names)?
        };
        Ok(IdList { path: path.to_path_buf(), entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sample ids, in the file's order, checked against a pool of `n`
    /// samples and its names: each in range, known and given once.
    pub fn resolve(&self, n: usize, names: Option<&Names>) -> Result<Vec<usize>> {
        let bad = |msg: String| Error::input(&self.path, msg);
        let mut seen: HashMap<usize, &str> = HashMap::with_capacity(self.entries.len());
        let mut ids = Vec::with_capacity(self.entries.len());
        for (place, entry) in &self.entries {
            let id = match (entry, names) {
                (Entry::Id(id), _) if *id >= n => {
                    return Err(bad(format!("{place}: sample id {id} is out of range for a pool of {n} samples")));
                }
                (Entry::Id(id), _) => *id,
                (Entry::Name(name), Some(names)) => names.id(name).ok_or_else(|| {
                    bad(format!("{place}: '{name}' is not in the names file {}", names.path.display()))
                })?,
                (Entry::Name(name), None) => {
                    return Err(bad(format!("{place} is a name ('{name}') but no --names file was given")));
                }
            };
            if let Some(first) = seen.insert(id, place) {
                let what = match entry {
                    Entry::Id(_) => format!("sample id {id}"),
                    Entry::Name(name) => format!("'{name}' (sample {id})"),
                };
                return Err(bad(format!("{place}: {what} appears more than once (first at {first})")));
            }
            ids.push(id);
        }
        Ok(ids)
    }
}

fn json_entries(path: &Path, text: &str) -> Result<Vec<(String, Entry)>> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::input(path, format!("is not valid JSON: {e}")))?;
    let items = value.as_array().ok_or_else(|| Error::input(path, "must hold a JSON list of sample ids or names"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let entry = match (v.as_u64(), v.as_str()) {
                (Some(id), _) => Entry::Id(usize::try_from(id).unwrap_or(usize::MAX)),
                (None, Some(name)) => Entry::Name(name.to_string()),
                _ => {
                    return Err(Error::input(
                        path,
                        format!("entry {i} is {v}, not a non-negative integer sample id or a name"),
                    ));
                }
            };
            Ok((format!("entry {i}"), entry))
        })
        .collect()
}

fn line_entries(path: &Path, text: &str, names: bool) -> Result<Vec<(String, Entry)>> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let place = format!("line {}", i + 1);
        let entry = if names {
            Entry::Name(line.to_string())
        } else {
            let id = line.parse().map_err(|_| {
                Error::input(path, format!("{place}: '{line}' is not a sample id (give --names to list names)"))
            })?;
            Entry::Id(id)
        };
        entries.push((place, entry));
    }
    Ok(entries)
}

/// The names file: one name per sample, in pool order.
#[derive(Debug, Clone)]
pub struct Names {
    path: PathBuf,
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Names {
    /// Reads and checks the file: UTF-8, no empty line, no name twice.
    pub fn read(path: &Path) -> Result<Names> {
        let text = read_text(path)?;
        let mut names = Vec::new();
        let mut index = HashMap::new();
        // The newline that ends the last line starts no line of its own.
        let body = text.strip_suffix('\n').unwrap_or(&text);
        for (i, line) in body.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                return Err(Error::input(path, format!("line {} is empty", i + 1)));
            }
            if let Some(first) = index.insert(line.to_string(), i) {
                return Err(Error::input(
                    path,
                    format!("line {}: '{line}' is also the name on line {}", i + 1, first + 1),
                ));
            }
            names.push(line.to_string());
        }
        Ok(Names { path: path.to_path_buf(), names, index })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks there is one name per sample of a pool of `n`.
    pub fn check_count(&self, n: usize) -> Result<()> {
        match self.names.len().cmp(&n) {
            std::cmp::Ordering::Equal => Ok(()),
            _ => Err(Error::input(
                &self.path,
                format!(
                    "holds {} names but the pool has {n} samples (one name per line, in pool order)",
                    self.names.len()
                ),
            )),
        }
    }

    fn id(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn name(&self, id: usize) -> &str {
        &self.names[id]
    }
}

/// How the selection is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One compact JSON list and a newline: what `json.load` reads.
    Json,
    /// One entry per line, for shell loops.
    Lines,
}

/// The selection as printed: ids, or names when a names file is given.
pub fn selection_bytes(selected: &[usize], names: Option<&Names>, format: Format) -> Vec<u8> {
    let mut bytes = match (format, names) {
        (Format::Json, None) => serde_json::to_vec(selected).expect("integers serialise"),
        (Format::Json, Some(names)) => {
            let list: Vec<&str> = selected.iter().map(|&i| names.name(i)).collect();
            serde_json::to_vec(&list).expect("strings serialise")
        }
        (Format::Lines, None) => selected.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n").into_bytes(),
        (Format::Lines, Some(names)) => {
            selected.iter().map(|&i| names.name(i)).collect::<Vec<_>>().join("\n").into_bytes()
        }
    };
    bytes.push(b'\n');
    bytes
}

/// The text of `path`, or of standard input for `-`.
fn read_text(path: &Path) -> Result<String> {
    let text = read_whole(path)
        .and_then(|bytes| String::from_utf8(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidData)));
    text.map_err(|e| {
        Error::input(
            path,
            match e.kind() {
                io::ErrorKind::NotFound => "no such file".into(),
                io::ErrorKind::PermissionDenied => "permission denied".into(),
                io::ErrorKind::InvalidData => "is not UTF-8 text".into(),
                io::ErrorKind::IsADirectory => "is a directory".into(),
                _ => format!("cannot read: {e}"),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn lists_read_as_json_or_lines_with_ids_or_names() {
        let dir = tempfile::tempdir().unwrap();
        let names = Names::read(&file(dir.path(), "names.txt", b"a.png\nb.png\nc d.png\n")).unwrap();
        names.check_count(3).unwrap();
        let json = IdList::read(&file(dir.path(), "l.json", br#"[2, "a.png"]"#), false).unwrap();
        assert_eq!(json.resolve(3, Some(&names)).unwrap(), vec![2, 0]);
        let lines = IdList::read(&file(dir.path(), "l.txt", b"c d.png\n\nb.png\n"), true).unwrap();
        assert_eq!(lines.resolve(3, Some(&names)).unwrap(), vec![2, 1]);
        let ids = IdList::read(&file(dir.path(), "i.txt", b"1\n 0 \n"), false).unwrap();
        assert_eq!(ids.resolve(3, None).unwrap(), vec![1, 0]);
        let one = IdList::read(&file(dir.path(), "one.txt", b"2"), false).unwrap();
        assert_eq!(one.resolve(3, None).unwrap(), vec![2]);
    }

    #[test]
    fn each_bad_list_is_named_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let names = Names::read(&file(dir.path(), "names.txt", b"a\nb\nc\n")).unwrap();
        let err = |name: &str, text: &[u8], as_names: bool| {
            let path = file(dir.path(), name, text);
            match IdList::read(&path, as_names) {
                Err(e) => e.to_string(),
                Ok(list) => list.resolve(3, Some(&names)).unwrap_err().to_string(),
            }
        };
        assert!(err("a.json", b"[0, 3]", false).contains("entry 1: sample id 3 is out of range"));
        assert!(
            err("b.json", b"[0, 2, 0]", false)
                .contains("entry 2: sample id 0 appears more than once (first at entry 0)")
        );
        assert!(err("c.json", br#"[0, "zz"]"#, false).contains("entry 1: 'zz' is not in the names file"));
        assert!(err("d.json", br#"[1, "b"]"#, false).contains("'b' (sample 1) appears more than once"));
        assert!(err("e.txt", b"0\nx\n", false).contains("line 2: 'x' is not a sample id"));
        assert!(err("f.json", b"[0, 1.5]", false).contains("entry 1 is 1.5"));
        assert!(err("g.json", b"{\"ids\": [1]}", false).contains("list"));
        assert!(err("h.json", b"[1, 2", false).contains("not valid JSON"));
        assert!(err("i.txt", b"\xff\xfe", false).contains("not UTF-8"));
        let no_names = IdList::read(&file(dir.path(), "j.json", br#"["a"]"#), false).unwrap();
        assert!(no_names.resolve(3, None).unwrap_err().to_string().contains("no --names file"));
    }

    #[test]
    fn bad_names_files_are_named_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &[u8]| Names::read(&file(dir.path(), "n.txt", text)).unwrap_err().to_string();
        assert!(err(b"a\n\nb\n").contains("line 2 is empty"));
        assert!(err(b"a\nb\na\n").contains("line 3: 'a' is also the name on line 1"));
        assert!(err(b"a\n\xff\n").contains("not UTF-8"));
        let names = Names::read(&file(dir.path(), "ok.txt", b"a\nb")).unwrap();
        assert!(names.check_count(3).unwrap_err().to_string().contains("holds 2 names but the pool has 3"));
    }

    #[test]
    fn selections_print_as_json_or_lines() {
        let dir = tempfile::tempdir().unwrap();
        let names = Names::read(&file(dir.path(), "n.txt", b"x\ny \"q\"\nz\n")).unwrap();
        assert_eq!(selection_bytes(&[0, 2], None, Format::Json), b"[0,2]\n");
        assert_eq!(selection_bytes(&[0, 2], None, Format::Lines), b"0\n2\n");
        assert_eq!(selection_bytes(&[1, 2], Some(&names), Format::Json), b"[\"y \\\"q\\\"\",\"z\"]\n");
        assert_eq!(selection_bytes(&[1, 2], Some(&names), Format::Lines), b"y \"q\"\nz\n");
    }
}
