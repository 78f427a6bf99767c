//! Where a feature array's bytes come from: a `.npy` file, standard input
//! (`-`), or one member of an `.npz` archive (`pool.npz` for its only array,
//! `pool.npz:key` for one of several). Every byte read is hashed (BLAKE3)
//! on the way, so a selection can be traced to the exact embeddings.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use zip::ZipArchive;

use crate::error::{Error, Result};

/// Bytes per read; large enough to amortise system calls and hashing.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Whether `path` names standard input: `-`.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Every byte of a small input read whole (a list, labels): the file, or
/// standard input for `-`.
pub fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    if is_stdin(path) {
        let mut bytes = Vec::new();
        io::stdin().read_to_end(&mut bytes).map(|_| bytes)
    } else {
        std::fs::read(path)
    }
}

/// One opened source of an array.
pub struct Source {
    /// As given on the command line, for messages.
    pub path: PathBuf,
    kind: Kind,
    hasher: blake3::Hasher,
    /// Bytes read (and hashed) so far.
    read: u64,
    /// Rows were skipped or left unread, so the hash is not the input's.
    partial: bool,
}

enum Kind {
    File {
        reader: BufReader<File>,
        len: u64,
    },
    Stdin(BufReader<io::Stdin>),
    /// The member is opened twice: for its header, then for its data.
    Npz {
        archive: ZipArchive<BufReader<File>>,
        member: String,
        len: u64,
        header: u64,
    },
}

/// What the report says about a source once read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Provenance {
    /// The source as given (`-` for standard input, `pool.npz:key` for a member).
    pub path: String,
    /// Bytes read: the whole file, stream or archive member (under MPI, the
    /// header and this rank's rows).
    pub bytes: u64,
    /// BLAKE3 of those bytes, in hex; null when only part of the input was
    /// read (a file split across MPI ranks).
    pub blake3: Option<String>,
}

impl Source {
    /// Opens `spec`: `-`, `x.npz`, `x.npz:key`, or a `.npy` file.
    pub fn open(spec: &Path) -> Result<Source> {
        let kind = if is_stdin(spec) {
            Kind::Stdin(BufReader::with_capacity(CHUNK_BYTES, io::stdin()))
        } else if let Some((archive, key)) = npz_spec(spec) {
            open_npz(spec, &archive, key)?
        } else {
            if spec.is_dir() {
                return Err(Error::input(spec, "is a directory, not an .npy file"));
            }
            let file = File::open(spec).map_err(|e| Error::input(spec, reason(&e)))?;
            let len = file.metadata().map_err(|e| Error::input(spec, reason(&e)))?.len();
            Kind::File { reader: BufReader::with_capacity(CHUNK_BYTES, file), len }
        };
        Ok(Source { path: spec.to_path_buf(), kind, hasher: blake3::Hasher::new(), read: 0, partial: false })
    }

    /// The source's size in bytes, where it is known before reading.
    pub fn len(&self) -> Option<u64> {
        match &self.kind {
            Kind::File { len, .. } | Kind::Npz { len, .. } => Some(*len),
            Kind::Stdin(_) => None,
        }
    }

    /// Runs `read` on the source from its first byte (for the header);
    /// returns what it returns. Called once, before [`Source::data`].
    pub fn header<T>(&mut self, read: impl FnOnce(&mut dyn Read) -> Result<T>) -> Result<T> {
        let (hasher, count) = (&mut self.hasher, &mut self.read);
        let result = match &mut self.kind {
            Kind::File { reader, .. } => read(&mut Hashing { inner: reader, hasher, count }),
            Kind::Stdin(reader) => read(&mut Hashing { inner: reader, hasher, count }),
            Kind::Npz { archive, member, .. } => {
                let file = archive.by_name(member).map_err(|e| Error::input(&self.path, e.to_string()))?;
                read(&mut Hashing { inner: file, hasher, count })
            }
        };
        if let Kind::Npz { header, .. } = &mut self.kind {
            *header = self.read;
        }
        result
    }

    /// Runs `read` on the array data, right after the header; then checks
    /// nothing follows it.
    pub fn data<T>(&mut self, read: impl FnOnce(&mut Data) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        let (hasher, count) = (&mut self.hasher, &mut self.read);
        let mut member;
        let reader: &mut dyn Read = match &mut self.kind {
            Kind::File { reader, .. } => reader,
            Kind::Stdin(reader) => reader,
            Kind::Npz { archive, member: name, header, .. } => {
                member = archive.by_name(name).map_err(|e| Error::input(&path, e.to_string()))?;
                // The header was hashed when it was read the first time.
                io::copy(&mut (&mut member).take(*header), &mut io::sink())
                    .map_err(|e| Error::input(&path, reason(&e)))?;
                &mut member
            }
        };
        let mut data = Data { reader, hasher, count };
        let result = read(&mut data)?;
        if self.partial {
            return Ok(result);
        }
        let mut one = [0u8; 1];
        match data.reader.read(&mut one) {
            Ok(0) => Ok(result),
            Ok(_) => Err(Error::input(&path, "has unexpected bytes after the array data")),
            Err(e) => Err(Error::input(&path, reason(&e))),
        }
    }

    /// The size and hash of everything read.
    pub fn provenance(&self) -> Provenance {
        Provenance {
            path: self.path.display().to_string(),
            bytes: self.read,
            blake3: (!self.partial).then(|| self.hasher.finalize().to_hex().to_string()),
        }
    }

    /// Passes over the next `bytes` of the data unread (a seek in a plain
    /// file), for a rank that reads only some rows; the hash then covers
    /// only part of the input and is not reported.
    pub fn skip(&mut self, bytes: u64) -> Result<()> {
        self.partial = true;
        let path = self.path.clone();
        let skipped = match &mut self.kind {
            Kind::File { reader, .. } => reader.seek_relative(bytes as i64),
            Kind::Stdin(reader) => io::copy(&mut reader.take(bytes), &mut io::sink()).map(drop),
            Kind::Npz { .. } => return Err(Error::input(&path, "an .npz member cannot be split across ranks")),
        };
        skipped.map_err(|e| Error::input(&path, reason(&e)))
    }

    /// Marks the input as read only up to some row.
    pub fn stop_early(&mut self) {
        self.partial = true;
    }
}

/// `archive.npz` and the key, for a spec naming an existing `.npz` file
/// (with `:key` or without).
fn npz_spec(spec: &Path) -> Option<(PathBuf, Option<String>)> {
    let text = spec.to_str()?;
    if text.ends_with(".npz") {
        return Some((spec.to_path_buf(), None));
    }
    let (archive, key) = text.rsplit_once(':')?;
    (archive.ends_with(".npz") && Path::new(archive).is_file()).then(|| (PathBuf::from(archive), Some(key.to_string())))
}

fn open_npz(spec: &Path, path: &Path, key: Option<String>) -> Result<Kind> {
    let file = File::open(path).map_err(|e| Error::input(path, reason(&e)))?;
    let mut archive = ZipArchive::new(BufReader::with_capacity(CHUNK_BYTES, file))
        .map_err(|e| Error::input(path, format!("is not a readable .npz archive: {e}")))?;
    let keys: Vec<String> = archive
        .file_names()
        .filter_map(|name| name.ok().and_then(|name| name.strip_suffix(".npy").map(str::to_string)))
        .collect();
    let key = match key {
        Some(key) if keys.contains(&key) => key,
        Some(key) => {
            return Err(Error::input(spec, format!("the archive has no array '{key}' (it has: {})", keys.join(", "))));
        }
        None if keys.len() == 1 => keys[0].clone(),
        None => {
            let how = format!("name one as {}:KEY", path.display());
            return Err(Error::input(
                spec,
                format!("the archive holds {} arrays ({}); {how}", keys.len(), keys.join(", ")),
            ));
        }
    };
    let member = format!("{key}.npy");
    let len = archive.by_name(&member).map_err(|e| Error::input(spec, e.to_string()))?.size();
    Ok(Kind::Npz { archive, member, len, header: 0 })
}

/// The array data of a source, read in chunks that are hashed while the
/// caller works on them.
pub struct Data<'a> {
    reader: &'a mut dyn Read,
    hasher: &'a mut blake3::Hasher,
    count: &'a mut u64,
}

impl Data<'_> {
    /// Fills `buf`, then runs `work` on it while another thread hashes it:
    /// hashing alone would add about an eighth to a load.
    pub fn chunk<T: Send>(&mut self, buf: &mut [u8], work: impl FnOnce(&[u8]) -> T + Send) -> io::Result<T> {
        self.reader.read_exact(buf)?;
        *self.count += buf.len() as u64;
        let hasher = &mut *self.hasher;
        let buf = &*buf;
        let ((), out) = rayon::join(
            || {
                hasher.update(buf);
            },
            || work(buf),
        );
        Ok(out)
    }
}

/// A reader that hashes and counts what passes through it.
struct Hashing<'a, R> {
    inner: R,
    hasher: &'a mut blake3::Hasher,
    count: &'a mut u64,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        *self.count += n as u64;
        Ok(n)
    }
}

pub fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::UnexpectedEof => "truncated: the data ends before the array does".into(),
        _ => format!("cannot read: {e}"),
    }
}
