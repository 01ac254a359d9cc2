//! Mutation test of the model loaders (issue 13): a few thousand mutated
//! weight files — networks from `tests/fixtures/parity`, NTMs from
//! `tests/fixtures/ntm` — loaded in-process by `Recurrent::load` and
//! `Ntm::load`. For every file:
//!
//! - no panic (each load runs under `catch_unwind`; every panic is collected
//!   and reported with the mutation that caused it), and no abort (the test
//!   process would die);
//! - `Ok` or `Err` are both allowed unless the mutation's outcome is certain
//!   (a truncated file, a size the tensors contradict, an unused
//!   parameter-like tensor must be errors; whitespace, an extra non-parameter
//!   tensor must load); an error's message names the file (its path appears in
//!   `to_string()`) and says something beyond it;
//! - a loaded model holds no more parameters than the file holds bytes;
//! - the peak of the bytes allocated during the load, over the bytes live
//!   before it, stays under [`bound`]: `8 × file size + 512 KiB`. A valid
//!   file needs about 2.2 × its size plus 15 KiB (measured: 147 KB for the
//!   67 KB fixture, 19.5 KB for a 1.8 KB one): the loader holds the file, its
//!   parsed header, the decoded tensors and the parameter buffer at once. So
//!   the bound leaves a margin of 3.6 × on the part that grows with the file
//!   and 30 × on the fixed part, and still catches an LSTM that a few-KB file
//!   merely claims to hold with `hidden_size = 300` (1.4 MB); a lying
//!   `hidden_size = 8000` asks for a gigabyte. Requests are counted when asked
//!   for, so an allocation the loader attempts and gets refused still counts.
//!
//! The counting allocator also refuses (returns null for) any allocation that
//! would take a load past [`HARD_LIMIT`] (1 GiB) over its starting bytes,
//! like a lowered address-space limit: a fallible reservation turns that into
//! an error (still a failure of the bound), an infallible one aborts the
//! process — the line printed on stderr just before names the mutation.
//!
//! The mutations are deterministic (a seeded SplitMix64 per case) and cycle
//! through the kinds in `KINDS`; `--nocapture` prints the counts by kind.
//! Everything runs in the single `#[test]` of this file, on one thread, so
//! that the allocator's counts belong to one load at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Instant;

use recurrent::Recurrent;
use recurrent::ntm::Ntm;
use recurrent::rng::SplitMix64;

// ---------------------------------------------------------------------------
// The counting allocator.

/// Bytes a single load may have live over its starting point before the
/// allocator refuses a request (a simulated memory limit).
const HARD_LIMIT: usize = 1 << 30;

struct Counting;

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes allocated and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most bytes live (or asked for) since the last reset.
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// `LIVE` when the measured load began.
static BASE: AtomicUsize = AtomicUsize::new(0);
/// A load is being measured (the hard limit applies).
static ARMED: AtomicBool = AtomicBool::new(false);
/// The measured load had a request refused.
static REFUSED: AtomicBool = AtomicBool::new(false);
/// The mutation being loaded, for the line printed on a refusal.
static CURRENT_CASE: Mutex<String> = Mutex::new(String::new());

impl Counting {
    /// Accounts for `size` more bytes; false (nothing accounted) when the
    /// request is refused.
    fn grow(size: usize) -> bool {
        let live = LIVE.fetch_add(size, SeqCst).saturating_add(size);
        PEAK.fetch_max(live, SeqCst);
        if ARMED.load(SeqCst) && live.saturating_sub(BASE.load(SeqCst)) > HARD_LIMIT {
            LIVE.fetch_sub(size, SeqCst);
            note_refusal(size);
            return false;
        }
        true
    }
}

/// Prints (once per load, without allocating) which request was refused and
/// during which mutation, so that an abort that follows can be traced.
fn note_refusal(size: usize) {
    if REFUSED.swap(true, SeqCst) {
        return;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = size;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"load_mutations: refused an allocation of ");
    let _ = err.write_all(&digits[at..]);
    let _ = err.write_all(b" bytes (over the 1 GiB limit per load) while loading ");
    if let Ok(case) = CURRENT_CASE.try_lock() {
        let _ = err.write_all(case.as_bytes());
    }
    let _ = err.write_all(b"\n");
}

// SAFETY: every call is forwarded to `System` with the caller's arguments;
// the counters are atomics and never touch the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), SeqCst);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc_zeroed` requires.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every
        // allocation goes through this allocator).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !Self::grow(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's pointer, layout and size, as
        // `GlobalAlloc::realloc` requires.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                LIVE.fetch_sub(new_size - old, SeqCst);
            }
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, SeqCst);
        }
        p
    }
}

/// Only one measured load at a time, whatever `--test-threads` says.
static MEASURE: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result, the peak of the bytes live during it
/// over the bytes live before it, and whether a request was refused.
fn measured<R>(f: impl FnOnce() -> R) -> (R, usize, bool) {
    let _one = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let base = LIVE.load(SeqCst);
    BASE.store(base, SeqCst);
    PEAK.store(base, SeqCst);
    REFUSED.store(false, SeqCst);
    ARMED.store(true, SeqCst);
    let r = f();
    ARMED.store(false, SeqCst);
    (
        r,
        PEAK.load(SeqCst).saturating_sub(base),
        REFUSED.load(SeqCst),
    )
}

/// The most bytes a load of a `file_len`-byte file may allocate:
/// `8 × file_len + 512 KiB`.
fn bound(file_len: usize) -> usize {
    8 * file_len + (512 << 10)
}

// ---------------------------------------------------------------------------
// A deterministic PRNG.

/// The library's SplitMix64 with the draws the mutations need.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(SplitMix64::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..hi` (`lo < hi`).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------------------
// Safetensors files as editable documents: a tiny JSON reader for the seed
// headers, and a writer whose values are raw JSON text (so that a mutation can
// put anything there).

enum Json {
    Obj(Vec<(String, Json)>),
    Arr(Vec<Json>),
    Str(String),
    Lit(String),
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.ws();
                        let key = self.string();
                        assert!(self.eat(b':'), "seed header: ':' expected");
                        fields.push((key, self.value()));
                        if self.eat(b'}') {
                            break;
                        }
                        assert!(self.eat(b','), "seed header: ',' expected");
                    }
                }
                Json::Obj(fields)
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value());
                        if self.eat(b']') {
                            break;
                        }
                        assert!(self.eat(b','), "seed header: ',' expected");
                    }
                }
                Json::Arr(items)
            }
            b'"' => Json::Str(self.string()),
            _ => {
                let start = self.i;
                while self.i < self.s.len() && !b",]} \n\r\t".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                Json::Lit(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
            }
        }
    }

    fn string(&mut self) -> String {
        assert_eq!(self.s[self.i], b'"', "seed header: string expected");
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                            self.i += 4;
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).unwrap())
                                .unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).expect("seed header: UTF-8")
    }
}

/// `s` as a JSON string literal.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One tensor of a document: everything but its data is JSON text.
#[derive(Clone)]
struct Tensor {
    name: String,
    /// JSON text, e.g. `"F32"`.
    dtype: String,
    /// JSON texts of the dimensions.
    shape: Vec<String>,
    data: Vec<u8>,
    /// JSON text replacing the computed `data_offsets`.
    offsets: Option<String>,
    /// False: the data stays in the file but the header omits the entry.
    listed: bool,
}

impl Tensor {
    fn dtype_name(&self) -> &str {
        self.dtype.trim_matches('"')
    }

    fn elem_size(&self) -> usize {
        dtype_size(self.dtype_name())
    }

    /// The shape, when every dimension is a plain number.
    fn dims(&self) -> Option<Vec<u64>> {
        self.shape.iter().map(|d| d.parse().ok()).collect()
    }
}

/// Bytes per element of a dtype (4 for unknown names).
fn dtype_size(name: &str) -> usize {
    match name {
        "F64" | "I64" | "U64" => 8,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" => 1,
        _ => 4,
    }
}

/// A safetensors file: metadata (key, JSON text of the value), tensors in
/// data order.
#[derive(Clone)]
struct Doc {
    meta: Option<Vec<(String, String)>>,
    tensors: Vec<Tensor>,
    /// Write the header with spaces and newlines between tokens.
    pretty: bool,
}

impl Doc {
    fn parse(bytes: &[u8]) -> Doc {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let data = &bytes[8 + n..];
        let Json::Obj(fields) = (Reader {
            s: &bytes[8..8 + n],
            i: 0,
        })
        .value() else {
            panic!("seed header: not an object")
        };
        let mut meta = None;
        let mut tensors = Vec::new();
        for (key, value) in fields {
            let Json::Obj(entry) = value else {
                panic!("seed header: {key} is not an object")
            };
            if key == "__metadata__" {
                let pairs = entry
                    .into_iter()
                    .map(|(k, v)| match v {
                        Json::Str(s) => (k, q(&s)),
                        _ => panic!("seed header: metadata {k} is not a string"),
                    })
                    .collect();
                meta = Some(pairs);
                continue;
            }
            let (mut dtype, mut shape, mut range) = (String::new(), Vec::new(), (0, 0));
            for (k, v) in entry {
                match (k.as_str(), v) {
                    ("dtype", Json::Str(s)) => dtype = q(&s),
                    ("shape", Json::Arr(dims)) => {
                        shape = dims
                            .into_iter()
                            .map(|d| match d {
                                Json::Lit(t) => t,
                                _ => panic!("seed header: {key}: bad shape"),
                            })
                            .collect();
                    }
                    ("data_offsets", Json::Arr(o)) => match &o[..] {
                        [Json::Lit(a), Json::Lit(b)] => {
                            range = (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap());
                        }
                        _ => panic!("seed header: {key}: bad data_offsets"),
                    },
                    _ => panic!("seed header: {key}: unexpected field {k}"),
                }
            }
            tensors.push((
                range.0,
                Tensor {
                    name: key,
                    dtype,
                    shape,
                    data: data[range.0..range.1].to_vec(),
                    offsets: None,
                    listed: true,
                },
            ));
        }
        tensors.sort_by_key(|(start, _)| *start);
        Doc {
            meta,
            tensors: tensors.into_iter().map(|(_, t)| t).collect(),
            pretty: false,
        }
    }

    /// The file: header length, header (padded to 8 bytes), data in tensor
    /// order.
    fn encode(&self) -> Vec<u8> {
        let (sep, colon, nl) = if self.pretty {
            (" ,\n  ", " : ", "\n  ")
        } else {
            (",", ":", "")
        };
        let mut entries = Vec::new();
        if let Some(meta) = &self.meta {
            let pairs: Vec<String> = meta
                .iter()
                .map(|(k, v)| format!("{}{colon}{v}", q(k)))
                .collect();
            entries.push(format!(
                "{}{colon}{{{}}}",
                q("__metadata__"),
                pairs.join(sep)
            ));
        }
        let mut at = 0usize;
        for t in &self.tensors {
            let (start, end) = (at, at + t.data.len());
            at = end;
            if !t.listed {
                continue;
            }
            let offsets = t.offsets.clone().unwrap_or(format!("[{start},{end}]"));
            entries.push(format!(
                "{}{colon}{{\"dtype\"{colon}{}{sep}\"shape\"{colon}[{}]{sep}\"data_offsets\"{colon}{offsets}}}",
                q(&t.name),
                t.dtype,
                t.shape.join(sep)
            ));
        }
        let mut header = format!("{{{nl}{}{nl}}}", entries.join(sep));
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        with_header(header.as_bytes(), self.tensors.iter().map(|t| &t.data[..]))
    }

    fn meta_get(&self, key: &str) -> Option<String> {
        let meta = self.meta.as_ref()?;
        let (_, v) = meta.iter().find(|(k, _)| k == key)?;
        Some(v.trim_matches('"').to_string())
    }

    /// Sets `key` to the JSON text `value` (added when absent).
    fn meta_set(&mut self, key: &str, value: String) {
        let meta = self.meta.get_or_insert_with(Vec::new);
        match meta.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => meta.push((key.to_string(), value)),
        }
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.tensors.iter().any(|t| t.name == name)
    }
}

/// A file from a header and data chunks.
fn with_header<'a>(header: &[u8], data: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    for d in data {
        out.extend_from_slice(d);
    }
    out
}

/// The header length a file's prefix claims, clamped to the file.
fn header_len(bytes: &[u8]) -> usize {
    if bytes.len() < 8 {
        return 0;
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .min(bytes.len() - 8)
}

// ---------------------------------------------------------------------------
// Seeds and mutations.

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Family {
    Net,
    Ntm,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Net => "net",
            Family::Ntm => "ntm",
        }
    }

    fn size_keys(self) -> &'static [&'static str] {
        match self {
            Family::Net => &["input_size", "hidden_size", "num_layers"],
            Family::Ntm => &[
                "input_size",
                "output_size",
                "controller_size",
                "memory_rows",
                "memory_width",
                "read_heads",
                "write_heads",
                "shift_range",
            ],
        }
    }

    /// Whether the loader takes a tensor of this name as a parameter.
    fn is_param(self, name: &str) -> bool {
        match self {
            Family::Net => name.starts_with("weight_") || name.starts_with("bias_"),
            Family::Ntm => ["controller.", "heads.", "output.", "init."]
                .iter()
                .any(|g| name.starts_with(g)),
        }
    }
}

struct Seed {
    name: String,
    family: Family,
    raw: Vec<u8>,
    doc: Doc,
}

fn read_seeds(family: Family) -> Vec<Seed> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(match family {
        Family::Net => "tests/fixtures/parity",
        Family::Ntm => "tests/fixtures/ntm",
    });
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no seed files in {}", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let raw = std::fs::read(&p).unwrap();
            Seed {
                name: p.file_name().unwrap().to_string_lossy().into_owned(),
                family,
                doc: Doc::parse(&raw),
                raw,
            }
        })
        .collect()
}

/// What a mutated file must give.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Ok,
    Err,
    Either,
}

/// Every mutation kind; case `i` of a family uses kind `i % kinds().len()`.
const KINDS: &str = "control bit_flip header_bytes json_char data_bytes truncate_prefix \
    truncate_header truncate_data header_len append deep_nesting header_not_object non_utf8 \
    meta_size_huge meta_size_small meta_size_garbage meta_flag meta_kind meta_remove \
    meta_duplicate_key meta_seed shape_dim shape_reshape shape_resize offsets dtype \
    dtype_consistent tensor_remove tensor_remove_entry tensor_duplicate tensor_extra_param \
    tensor_extra_other tensor_rename data_values header_whitespace cross_loader combo";

/// Kinds that edit bytes (of the original file).
const BYTE_KINDS: &str = "bit_flip header_bytes json_char data_bytes truncate_prefix \
    truncate_header truncate_data header_len append non_utf8";

/// The words of `list`.
fn words(list: &'static str) -> Vec<&'static str> {
    list.split_whitespace().collect()
}

struct Mutant {
    kind: &'static str,
    seed: String,
    detail: String,
    bytes: Vec<u8>,
    expect: Expect,
}

/// Applies the byte-level mutation `kind` to `b`.
fn mutate_bytes(kind: &str, b: &mut Vec<u8>, r: &mut Rng) -> (String, Expect) {
    let n = header_len(b);
    let header = 8..(8 + n).max(9).min(b.len());
    match kind {
        "bit_flip" => {
            let flips: Vec<(usize, u8)> = (0..r.range(1, 5))
                .map(|_| (r.below(b.len()), 1u8 << r.below(8)))
                .collect();
            for &(at, bit) in &flips {
                b[at] ^= bit;
            }
            (
                format!("flipped bits (offset, mask) {flips:?}"),
                Expect::Either,
            )
        }
        "header_bytes" => {
            let at = r.range(header.start, header.end);
            let len = r.range(1, 9).min(b.len() - at);
            let new = r.bytes(len);
            b[at..at + len].copy_from_slice(&new);
            (
                format!("bytes {at}..{} set to {new:02x?}", at + len),
                Expect::Either,
            )
        }
        "json_char" => {
            let at = r.range(header.start, header.end);
            let c = *r.pick(b"0123456789{}[]\":,-.eE ");
            let old = b[at];
            b[at] = c;
            (
                format!("header byte {at} {:?} -> {:?}", old as char, c as char),
                Expect::Either,
            )
        }
        "data_bytes" => {
            let start = (8 + n).min(b.len() - 1);
            let at = r.range(start, b.len());
            let len = r.range(1, 9).min(b.len() - at);
            let new = r.bytes(len);
            b[at..at + len].copy_from_slice(&new);
            (
                format!("data bytes {at}..{} set to {new:02x?}", at + len),
                Expect::Either,
            )
        }
        "truncate_prefix" => {
            let len = r.below(8);
            b.truncate(len);
            (
                format!("truncated to {len} bytes (inside the length prefix)"),
                Expect::Err,
            )
        }
        "truncate_header" => {
            let len = r.range(8, 8 + n);
            b.truncate(len);
            (
                format!("truncated to {len} bytes (inside the {n}-byte header)"),
                Expect::Err,
            )
        }
        "truncate_data" => {
            let full = b.len();
            let len = r.range(8 + n, full);
            b.truncate(len);
            (
                format!("truncated to {len} of {full} bytes (inside the data)"),
                Expect::Err,
            )
        }
        "header_len" => {
            let len = b.len() as u64;
            let n64 = n as u64;
            let choices = [
                0,
                1,
                2,
                7,
                n64 - 1,
                n64 + 1,
                n64 + 8,
                len - 8,
                len - 7,
                len,
                1 << 31,
                1 << 32,
                100_000_001,
                1 << 62,
                1 << 63,
                u64::MAX,
                r.next(),
            ];
            let mut v = *r.pick(&choices);
            if v == n64 {
                v = u64::MAX;
            }
            b[..8].copy_from_slice(&v.to_le_bytes());
            (format!("header length {n} -> {v}"), Expect::Err)
        }
        "append" => {
            let len = r.range(1, 65);
            let (what, extra) = match r.below(3) {
                0 => ("random", r.bytes(len)),
                1 => ("zero", vec![0; len]),
                _ => ("space", vec![b' '; len]),
            };
            b.extend_from_slice(&extra);
            (format!("{len} {what} bytes appended"), Expect::Err)
        }
        "non_utf8" => {
            let quotes: Vec<usize> = (header.start..header.end)
                .filter(|&i| b[i] == b'"')
                .collect();
            let at = if quotes.is_empty() {
                header.start
            } else {
                *r.pick(&quotes) + 1
            };
            let choices: [&[u8]; 4] = [&[0xff], &[0xc3], &[0x80], &[0xed, 0xa0, 0x80]];
            let bad = *r.pick(&choices);
            let mut header_bytes = b[8..8 + n].to_vec();
            header_bytes.splice(at - 8..at - 8, bad.iter().copied());
            *b = with_header(&header_bytes, [&b[8 + n..]]);
            (
                format!("bytes {bad:02x?} inserted at header byte {}", at - 8),
                Expect::Err,
            )
        }
        other => unreachable!("not a byte kind: {other}"),
    }
}

/// Sizes that no small file can back.
const HUGE: &str = "300 1000 8000 30000 2147483648 4294967296 4611686018427387904 \
    9223372036854775807 18446744073709551615";

/// Strings that are not sizes.
const NOT_SIZES: &str = "-1 -9223372036854775808 18446744073709551616 \
    340282366920938463463374607431768211456 1e3 5.0 abc 0x10 NaN inf 5abc null \u{663}";

/// JSON values (not strings) where a string is expected.
const NOT_STRINGS: &[&str] = &["5", "null", "true", "[5]", "{}", "-1", "\"\"", "\" \""];

const CELLS: &[&str] = &["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"];

fn gates(cell: &str) -> usize {
    match cell {
        "lstm" => 4,
        "gru" | "gru_reset_before" => 3,
        _ => 1,
    }
}

/// Index of a tensor; `params`: only parameters (or only others when
/// `Some(false)`); `None` when there is none of that sort.
fn pick_tensor(doc: &Doc, family: Family, params: Option<bool>, r: &mut Rng) -> Option<usize> {
    let ids: Vec<usize> = (0..doc.tensors.len())
        .filter(|&i| params.is_none_or(|p| family.is_param(&doc.tensors[i].name) == p))
        .collect();
    (!ids.is_empty()).then(|| *r.pick(&ids))
}

/// Err for a parameter, `other` for any other tensor.
fn param_or(family: Family, name: &str, other: Expect) -> Expect {
    if family.is_param(name) {
        Expect::Err
    } else {
        other
    }
}

/// Applies the structural mutation `kind` to `d` (a `family` file).
fn mutate_doc(kind: &str, d: &mut Doc, family: Family, r: &mut Rng) -> (String, Expect) {
    match kind {
        "deep_nesting" => {
            let depth = *r.pick(&[64usize, 1_000, 100_000]);
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            if r.coin() {
                d.meta_set("nested", nested);
                (format!("metadata value nested {depth} deep"), Expect::Err)
            } else {
                let t = r.below(d.tensors.len());
                d.tensors[t].shape = vec![nested];
                let name = d.tensors[t].name.clone();
                (format!("shape of {name} nested {depth} deep"), Expect::Err)
            }
        }
        "meta_size_huge" | "meta_size_small" | "meta_size_garbage" => {
            let key = *r.pick(family.size_keys());
            let old = d.meta_get(key).unwrap_or_default();
            let value = match kind {
                "meta_size_huge" => q(r.pick::<&str>(&words(HUGE))),
                "meta_size_small" => {
                    let v: u64 = old.parse().unwrap_or(1);
                    let mut new = *r.pick(&[0, 1, v.saturating_sub(1), v + 1, 2 * v, v / 2, v + 8]);
                    if new == v {
                        new = v + 1;
                    }
                    q(&new.to_string())
                }
                _ if r.coin() => q(r.pick::<&str>(&words(NOT_SIZES))),
                _ => r.pick(NOT_STRINGS).to_string(),
            };
            let detail = format!("metadata {key}: {old:?} -> {value}");
            d.meta_set(key, value);
            (detail, Expect::Err)
        }
        "meta_flag" => match family {
            Family::Net => {
                let key = *r.pick(&["bias", "bidirectional"]);
                let old = d.meta_get(key).unwrap_or_default();
                let value = if r.coin() {
                    let on = old == "true";
                    q(r.pick::<&str>(if on { &["false", "0"] } else { &["true", "1"] }))
                } else {
                    r.pick(&[
                        "\"yes\"",
                        "\"\"",
                        "\"2\"",
                        "\"truee\"",
                        "\"-1\"",
                        "\"null\"",
                        "true",
                    ])
                    .to_string()
                };
                let detail = format!("metadata {key}: {old:?} -> {value}");
                d.meta_set(key, value);
                (detail, Expect::Err)
            }
            Family::Ntm => {
                let memory = d.meta_get("memory").unwrap_or_default();
                if r.coin() {
                    let value = if r.coin() {
                        q(if memory == "constant" {
                            "learned"
                        } else {
                            "constant"
                        })
                    } else {
                        r.pick(&["\"\"", "\"Constant\"", "\"zero\"", "\"learned \"", "1"])
                            .to_string()
                    };
                    let detail = format!("metadata memory: {memory:?} -> {value}");
                    d.meta_set("memory", value);
                    (detail, Expect::Err)
                } else {
                    let finite = r.coin();
                    let value = if finite {
                        r.pick(&["\"0\"", "\"0.5\"", "\"-1e3\"", "\"1e-30\""])
                    } else {
                        r.pick(&[
                            "\"NaN\"", "\"inf\"", "\"-inf\"", "\"1e39\"", "\"abc\"", "\"\"",
                        ])
                    };
                    let expect = match (memory.as_str(), finite) {
                        ("constant", true) => Expect::Ok,
                        ("constant", false) => Expect::Err,
                        _ => Expect::Either,
                    };
                    d.meta_set("memory_init", value.to_string());
                    (
                        format!("metadata memory_init -> {value} ({memory} memory)"),
                        expect,
                    )
                }
            }
        },
        "meta_kind" => match family {
            Family::Net => {
                let old = d.meta_get("cell").unwrap_or_default();
                if r.below(5) == 0 {
                    d.meta_set("model", q("ntm"));
                    return (
                        format!("metadata model = \"ntm\" added ({old})"),
                        Expect::Either,
                    );
                }
                let choices: Vec<&str> = CELLS
                    .iter()
                    .copied()
                    .chain(["rnn_sigmoid", "sigmoid", "LSTM", "ntm", "", " lstm"])
                    .filter(|c| *c != old)
                    .collect();
                let new = *r.pick(&choices);
                let expect = if CELLS.contains(&new) && gates(new) == gates(&old) {
                    Expect::Ok
                } else {
                    Expect::Err
                };
                d.meta_set("cell", q(new));
                (format!("metadata cell: {old:?} -> {new:?}"), expect)
            }
            Family::Ntm => {
                let old = d.meta_get("controller").unwrap_or_default();
                match r.below(4) {
                    0 => {
                        let new = *r.pick(&["lstm", "feedforward", "gru", "LSTM", ""]);
                        let new = if new == old { "gru" } else { new };
                        d.meta_set("controller", q(new));
                        (
                            format!("metadata controller: {old:?} -> {new:?}"),
                            Expect::Err,
                        )
                    }
                    1 => {
                        let cell = *r.pick(CELLS);
                        d.meta_set("cell", q(cell));
                        (format!("metadata cell = {cell:?} added"), Expect::Err)
                    }
                    2 => {
                        let model = *r.pick(&["lstm", "rnn", "NTM", ""]);
                        d.meta_set("model", q(model));
                        (format!("metadata model = {model:?} added"), Expect::Err)
                    }
                    _ => {
                        d.meta_set("model", q("ntm"));
                        ("metadata model = \"ntm\" added".to_string(), Expect::Ok)
                    }
                }
            }
        },
        "meta_remove" => {
            let keys: Vec<String> = d.meta.iter().flatten().map(|(k, _)| k.clone()).collect();
            if r.below(8) == 0 || keys.is_empty() {
                d.meta = None;
                return ("__metadata__ removed".to_string(), Expect::Err);
            }
            let key = r.pick(&keys).clone();
            let expect = match (family, key.as_str()) {
                (Family::Net, "cell" | "input_size" | "hidden_size") => Expect::Err,
                (Family::Net, "num_layers" | "bias" | "bidirectional") => Expect::Either,
                (
                    Family::Ntm,
                    "controller" | "input_size" | "output_size" | "controller_size" | "memory_rows"
                    | "memory_width" | "read_heads" | "memory",
                ) => Expect::Err,
                (Family::Ntm, "write_heads" | "shift_range" | "memory_init") => Expect::Either,
                _ => Expect::Ok,
            };
            if let Some(meta) = &mut d.meta {
                meta.retain(|(k, _)| *k != key);
            }
            (format!("metadata {key} removed"), expect)
        }
        "meta_duplicate_key" => {
            let key = r.pick(family.size_keys()).to_string();
            let value = q(&r.range(1, 9).to_string());
            if let Some(meta) = &mut d.meta {
                meta.push((key.clone(), value.clone()));
            }
            (
                format!("metadata {key} given twice (second {value})"),
                Expect::Either,
            )
        }
        "meta_seed" => {
            if r.coin() {
                let seed = r.next();
                d.meta_set("seed", q(&seed.to_string()));
                (format!("metadata seed -> {seed}"), Expect::Ok)
            } else {
                let v = *r.pick(&["\"-1\"", "\"abc\"", "\"18446744073709551616\"", "\"\""]);
                d.meta_set("seed", v.to_string());
                (format!("metadata seed -> {v}"), Expect::Err)
            }
        }
        "shape_dim" => {
            let i = r.below(d.tensors.len());
            let t = &mut d.tensors[i];
            if t.shape.is_empty() {
                t.shape.push("2".into());
                return (
                    format!("{}: dimension 2 added to a scalar", t.name),
                    Expect::Err,
                );
            }
            let k = r.below(t.shape.len());
            let old: u64 = t.shape[k].parse().unwrap_or(1);
            let choices = [
                (old + 1).to_string(),
                old.saturating_sub(1).to_string(),
                "0".into(),
                "2147483648".into(),
                "4611686018427387904".into(),
                "18446744073709551615".into(),
                "18446744073709551616".into(),
                "-1".into(),
                "1.5".into(),
                "\"3\"".into(),
                "null".into(),
            ];
            let mut new = r.pick(&choices).clone();
            if new == t.shape[k] {
                new = (old + 1).to_string();
            }
            let detail = format!("{}: shape[{k}] {} -> {new}", t.name, t.shape[k]);
            t.shape[k] = new;
            (detail, Expect::Err)
        }
        "shape_reshape" => {
            let i = r.below(d.tensors.len());
            let t = &mut d.tensors[i];
            let dims = t.dims().unwrap_or_default();
            let numel: u64 = dims.iter().product();
            let mut options: Vec<Vec<u64>> = vec![
                dims.iter().rev().copied().collect(),
                vec![numel],
                [&dims[..], &[1]].concat(),
                [&[1], &dims[..]].concat(),
                dims.iter().copied().filter(|&x| x != 1).collect(),
            ];
            options.retain(|o| *o != dims);
            let new = r.pick(&options).clone();
            let detail = format!("{}: shape {dims:?} -> {new:?} (same size)", t.name);
            t.shape = new.iter().map(u64::to_string).collect();
            let expect = param_or(family, &t.name, Expect::Ok);
            (detail, expect)
        }
        "shape_resize" => {
            let i = r.below(d.tensors.len());
            let t = &mut d.tensors[i];
            let mut dims = t.dims().unwrap_or_default();
            if dims.is_empty() {
                dims.push(1);
            }
            let k = r.below(dims.len());
            let old = dims.clone();
            dims[k] = if dims[k] > 1 && r.coin() {
                dims[k] - 1
            } else {
                dims[k] + 1
            };
            let numel: u64 = dims.iter().product();
            t.data.resize(numel as usize * t.elem_size(), 0);
            t.shape = dims.iter().map(u64::to_string).collect();
            let detail = format!("{}: shape {old:?} -> {dims:?}, data resized", t.name);
            let expect = param_or(family, &t.name, Expect::Ok);
            (detail, expect)
        }
        "offsets" => {
            let i = r.below(d.tensors.len());
            let start: usize = d.tensors[..i].iter().map(|t| t.data.len()).sum();
            let (s, e) = (start, start + d.tensors[i].data.len());
            let prev = if i > 0 {
                let ps = start - d.tensors[i - 1].data.len();
                format!("[{ps},{start}]")
            } else {
                format!("[0,{}]", e + 4)
            };
            let choices = [
                format!("[{},{}]", s + 4, e + 4),
                format!("[{s},{}]", e + 4),
                format!("[{s},{}]", e.saturating_sub(4)),
                format!("[{},{e}]", s + 4),
                format!("[{e},{s}]"),
                format!("[{s},{s}]"),
                format!("[{e},{e}]"),
                prev,
                format!("[{s},4611686018427387904]"),
                format!("[4611686018427387904,{}]", (1u64 << 62) + (e - s) as u64),
                format!("[{s},18446744073709551615]"),
                format!("[18446744073709551615,{e}]"),
                format!("[{s},18446744073709551616]"),
                format!("[-4,{e}]"),
                format!("[{s}]"),
                format!("[{s},{e},{e}]"),
                format!("[\"{s}\",\"{e}\"]"),
                "[]".to_string(),
                "null".to_string(),
            ];
            let new = r.pick(&choices).clone();
            let t = &mut d.tensors[i];
            let detail = format!("{}: data_offsets [{s},{e}] -> {new}", t.name);
            t.offsets = Some(new);
            (detail, Expect::Err)
        }
        "dtype" => {
            let i = r.below(d.tensors.len());
            let t = &mut d.tensors[i];
            let old = t.dtype.clone();
            let size = t.elem_size();
            let mut choices: Vec<String> =
                words("F32 F16 BF16 F64 I64 I32 U32 I16 U16 I8 U8 BOOL F8_E4M3 F8_E5M2 f32 XYZ")
                    .into_iter()
                    .map(q)
                    .chain(["\"\"", "4", "null"].map(String::from))
                    .collect();
            choices.retain(|c| *c != old);
            t.dtype = r.pick(&choices).clone();
            let same_size = t.elem_size() == size && t.dtype.starts_with('"');
            let expect = if same_size && !family.is_param(&t.name) {
                Expect::Either
            } else {
                Expect::Err
            };
            (format!("{}: dtype {old} -> {}", t.name, t.dtype), expect)
        }
        "dtype_consistent" => {
            let i = r.below(d.tensors.len());
            let t = &mut d.tensors[i];
            let old = (t.dtype.clone(), t.shape.clone());
            let bytes = t.data.len() as u64;
            let options: Vec<(&str, u64)> = [
                ("F64", 8),
                ("I64", 8),
                ("F32", 4),
                ("I32", 4),
                ("U32", 4),
                ("F16", 2),
                ("BF16", 2),
                ("U8", 1),
                ("BOOL", 1),
            ]
            .into_iter()
            .filter(|(name, size)| *name != t.dtype_name() && bytes % size == 0)
            .collect();
            let (name, size) = *r.pick(&options);
            t.dtype = q(name);
            if size as usize != dtype_size(old.0.trim_matches('"')) {
                t.shape = vec![(bytes / size).to_string()];
            }
            let detail = format!(
                "{}: dtype {} shape [{}] -> {} shape [{}] (same bytes)",
                t.name,
                old.0,
                old.1.join(","),
                t.dtype,
                t.shape.join(",")
            );
            // A tensor the model does not read loads whatever its dtype.
            (detail, param_or(family, &t.name, Expect::Ok))
        }
        "tensor_remove" => {
            let i = r.below(d.tensors.len());
            let t = d.tensors.remove(i);
            (
                format!("{} removed (with its data)", t.name),
                param_or(family, &t.name, Expect::Ok),
            )
        }
        "tensor_remove_entry" => {
            let i = r.below(d.tensors.len());
            let t = &mut d.tensors[i];
            t.listed = false;
            (
                format!(
                    "{} removed from the header (its data left in place)",
                    t.name
                ),
                Expect::Err,
            )
        }
        "tensor_duplicate" => {
            let i = r.below(d.tensors.len());
            let copy = d.tensors[i].clone();
            let name = copy.name.clone();
            d.tensors.insert(i + 1, copy);
            (
                format!("{name} listed twice (two data blocks)"),
                Expect::Err,
            )
        }
        "tensor_extra_param" => {
            let names: Vec<String> = match family {
                Family::Net => {
                    let layers: usize = d
                        .meta_get("num_layers")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                    vec![
                        format!("weight_ih_l{layers}"),
                        format!("bias_hh_l{layers}"),
                        "weight_hh_l0_reverse".into(),
                        "bias_ih_l0".into(),
                        "weight_hr_l0".into(),
                        "weight_x".into(),
                        "bias_".into(),
                        "weight_ih_l0_reverse_extra".into(),
                    ]
                }
                Family::Ntm => vec![
                    "controller.weight".into(),
                    "controller.weight_ih".into(),
                    "init.memory".into(),
                    "heads.weight2".into(),
                    "output.extra".into(),
                    "init.x".into(),
                    "controller.".into(),
                ],
            };
            let names: Vec<&String> = names.iter().filter(|n| !d.has_tensor(n)).collect();
            let name = r.pick(&names).to_string();
            let mut t = d.tensors[pick_tensor(d, family, Some(true), r).unwrap()].clone();
            let detail = format!("extra tensor {name} (a copy of {})", t.name);
            t.name = name;
            d.tensors.push(t);
            (detail, Expect::Err)
        }
        "tensor_extra_other" => {
            let name = *r.pick(&[
                "notes",
                "grad.extra",
                "x_extra",
                "opt.state",
                "lengths2",
                "extra",
            ]);
            let (dtype, data) = if r.coin() {
                ("F32", 1.5f32.to_le_bytes().repeat(3))
            } else {
                ("I64", 7i64.to_le_bytes().repeat(3))
            };
            d.tensors.push(Tensor {
                name: name.to_string(),
                dtype: q(dtype),
                shape: vec!["3".into()],
                data,
                offsets: None,
                listed: true,
            });
            (
                format!("extra non-parameter tensor {name} ({dtype} [3])"),
                Expect::Ok,
            )
        }
        "tensor_rename" => {
            let i = pick_tensor(d, family, Some(true), r).unwrap();
            let t = &mut d.tensors[i];
            let old = t.name.clone();
            let new = match r.below(3) {
                0 => format!("{old}x"),
                1 => format!("{old}_reverse_2"),
                _ => format!("{old}9"),
            };
            t.name.clone_from(&new);
            (format!("{old} renamed {new}"), Expect::Err)
        }
        "data_values" => {
            let i = pick_tensor(d, family, Some(true), r).unwrap();
            let t = &mut d.tensors[i];
            let finite = r.coin();
            let value = if finite {
                *r.pick(&[
                    0.0f32,
                    -0.0,
                    1e30,
                    -1e30,
                    1e-40,
                    f32::MAX,
                    f32::MIN_POSITIVE,
                ])
            } else {
                *r.pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY])
            };
            let count = r.range(1, 5);
            let elems = t.data.len() / 4;
            if elems == 0 {
                return (format!("{}: no values to set", t.name), Expect::Either);
            }
            for _ in 0..count {
                let at = 4 * r.below(elems);
                t.data[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            let expect = if finite { Expect::Ok } else { Expect::Either };
            (
                format!("{}: {count} values set to {value:e}", t.name),
                expect,
            )
        }
        "header_not_object" => {
            // Handled by `mutate`: it replaces the whole header.
            unreachable!()
        }
        "header_whitespace" => {
            d.pretty = true;
            (
                "header written with spaces and newlines".to_string(),
                Expect::Ok,
            )
        }
        other => unreachable!("not a document kind: {other}"),
    }
}

/// The `index`-th case of `family`.
fn mutate(family: Family, index: usize, seeds: &[Seed], others: &[Seed]) -> Mutant {
    let kinds = words(KINDS);
    let kind = kinds[index % kinds.len()];
    let mut r = Rng::new(0x4c4f_4144_u64 ^ ((family as u64) << 40) ^ (index as u64 * 0x1_0001));
    let seed = r.pick(seeds);
    let (bytes, detail, expect, seed_name) = match kind {
        "control" => {
            if r.coin() {
                (
                    seed.raw.clone(),
                    "unchanged".to_string(),
                    Expect::Ok,
                    &seed.name,
                )
            } else {
                (
                    seed.doc.encode(),
                    "re-encoded".to_string(),
                    Expect::Ok,
                    &seed.name,
                )
            }
        }
        "cross_loader" => {
            let other = r.pick(others);
            let what = format!(
                "a {} file given to the {} loader",
                other.family.name(),
                family.name()
            );
            (other.raw.clone(), what, Expect::Err, &other.name)
        }
        "header_not_object" => {
            let header = *r.pick(&[
                "[]",
                "null",
                "1",
                "\"x\"",
                "{}",
                "{\"__metadata__\":{}}",
                "",
                "        ",
                "{\"__metadata__\":null}",
                "[{}]",
            ]);
            let data: Vec<&[u8]> = seed.doc.tensors.iter().map(|t| &t.data[..]).collect();
            let bytes = with_header(header.as_bytes(), data);
            (
                bytes,
                format!("header replaced by {header:?}"),
                Expect::Err,
                &seed.name,
            )
        }
        "combo" => {
            let mut doc = seed.doc.clone();
            let mut parts = Vec::new();
            let structural: Vec<&str> = kinds
                .iter()
                .copied()
                .filter(|k| {
                    !words(BYTE_KINDS).contains(k)
                        && !["control", "cross_loader", "combo", "header_not_object"].contains(k)
                })
                .collect();
            for _ in 0..r.range(1, 3) {
                let k = *r.pick(&structural);
                let (what, _) = mutate_doc(k, &mut doc, family, &mut r);
                parts.push(format!("{k}: {what}"));
            }
            let mut bytes = doc.encode();
            if r.coin() {
                let k = *r.pick(&words(BYTE_KINDS));
                let (what, _) = mutate_bytes(k, &mut bytes, &mut r);
                parts.push(format!("{k}: {what}"));
            }
            (bytes, parts.join("; "), Expect::Either, &seed.name)
        }
        k if words(BYTE_KINDS).contains(&k) => {
            let mut bytes = seed.raw.clone();
            let (what, expect) = mutate_bytes(k, &mut bytes, &mut r);
            (bytes, what, expect, &seed.name)
        }
        k => {
            let mut doc = seed.doc.clone();
            let (what, expect) = mutate_doc(k, &mut doc, family, &mut r);
            (doc.encode(), what, expect, &seed.name)
        }
    };
    Mutant {
        kind,
        seed: seed_name.clone(),
        detail,
        bytes,
        expect,
    }
}

// ---------------------------------------------------------------------------
// Loading and checking.

/// Loads `path` with `family`'s loader: the number of parameters, or the
/// error's message.
fn load(family: Family, path: &Path) -> Result<usize, String> {
    match family {
        Family::Net => Recurrent::load(path)
            .map(|m| m.params().num_elements())
            .map_err(|e| e.to_string()),
        Family::Ntm => Ntm::load(path)
            .map(|m| m.params().num_elements())
            .map_err(|e| e.to_string()),
    }
}

/// The message and location of the last panic, set by the hook.
static PANIC_NOTE: Mutex<Option<String>> = Mutex::new(None);

struct Failure {
    class: &'static str,
    /// `family kind`.
    group: String,
    case: String,
    what: String,
}

/// A folder of its own in the temporary directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Default)]
struct Counts {
    cases: usize,
    ok: usize,
    err: usize,
    failed: usize,
}

#[test]
fn mutated_model_files_load_or_fail_cleanly() {
    const NET_CASES: usize = 2_000;
    const NTM_CASES: usize = 1_000;
    let started = Instant::now();
    let nets = read_seeds(Family::Net);
    let ntms = read_seeds(Family::Ntm);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = TempDir(std::env::temp_dir().join(format!(
        "librnn-load-mutations-{}-{nanos}",
        std::process::id()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("model.safetensors");
    let path_text = path.display().to_string();

    // Warm up (lazily initialised statics are not the load's doing).
    for seed in [&nets[0], &ntms[0]] {
        std::fs::write(&path, &seed.raw).unwrap();
        load(seed.family, &path).unwrap_or_else(|e| panic!("seed {}: {e}", seed.name));
    }

    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string payload)".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut note) = PANIC_NOTE.lock() {
            *note = Some(format!("{msg}{at}"));
        }
    }));

    let mut failures: Vec<Failure> = Vec::new();
    let mut counts: BTreeMap<(Family, &'static str), Counts> = BTreeMap::new();
    let (mut ok, mut err) = (0usize, 0usize);
    // Valid files (the controls): (peak, size) of the largest peak and of
    // the largest peak / size.
    let mut honest_peak = (0usize, 0usize);
    let mut honest_ratio = (0usize, 1usize);
    let mut max_peak: Option<(usize, String)> = None;
    let plan = [
        (Family::Net, NET_CASES, &nets, &ntms),
        (Family::Ntm, NTM_CASES, &ntms, &nets),
    ];
    for (family, cases, seeds, others) in plan {
        for index in 0..cases {
            let m = mutate(family, index, seeds, others);
            let case = format!(
                "{} #{index} {} on {}: {}",
                family.name(),
                m.kind,
                m.seed,
                m.detail
            );
            // A new file each time: ext4 flushes a file truncated and
            // rewritten in place on close, which would make this I/O-bound.
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, &m.bytes).unwrap();
            if let Ok(mut c) = CURRENT_CASE.lock() {
                c.clone_from(&case);
            }
            let (result, peak, refused) =
                measured(|| panic::catch_unwind(AssertUnwindSafe(|| load(family, &path))));
            let len = m.bytes.len();
            let entry = counts.entry((family, m.kind)).or_default();
            entry.cases += 1;
            let before = failures.len();
            let mut fail = |class: &'static str, what: String| {
                failures.push(Failure {
                    class,
                    group: format!("{} {}", family.name(), m.kind),
                    case: case.clone(),
                    what,
                });
            };
            if max_peak.as_ref().is_none_or(|(p, _)| peak > *p) {
                max_peak = Some((peak, case.clone()));
            }
            if peak > bound(len) || refused {
                fail(
                    "allocation above the bound",
                    format!(
                        "peak {peak} bytes{} for a {len}-byte file (bound {})",
                        if refused {
                            " (a request was refused)"
                        } else {
                            ""
                        },
                        bound(len)
                    ),
                );
            }
            match result {
                Err(_) => {
                    let note = PANIC_NOTE.lock().ok().and_then(|mut n| n.take());
                    fail("panic", note.unwrap_or_else(|| "(no message)".into()));
                }
                Ok(Ok(params)) => {
                    ok += 1;
                    entry.ok += 1;
                    if m.kind == "control" {
                        if peak > honest_peak.0 {
                            honest_peak = (peak, len);
                        }
                        if peak * honest_ratio.1 > honest_ratio.0 * len {
                            honest_ratio = (peak, len);
                        }
                    }
                    if m.expect == Expect::Err {
                        fail(
                            "loaded, should fail",
                            format!("loaded ({params} parameters)"),
                        );
                    }
                    if params.saturating_mul(4) > len {
                        fail(
                            "more parameters than the file holds",
                            format!("{params} parameters from a {len}-byte file"),
                        );
                    }
                }
                Ok(Err(msg)) => {
                    err += 1;
                    entry.err += 1;
                    if m.expect == Expect::Ok {
                        fail("failed, should load", msg.clone());
                    }
                    let rest = msg.replace(&path_text, "");
                    if !msg.contains(&path_text) {
                        fail("message without the path", msg);
                    } else if rest.trim_matches(|c: char| !c.is_alphanumeric()).len() < 3 {
                        fail("message says nothing", msg);
                    }
                }
            }
            if failures.len() > before {
                entry.failed += 1;
            }
        }
    }
    panic::set_hook(previous_hook);
    let total = NET_CASES + NTM_CASES;

    println!(
        "load_mutations: {total} files ({NET_CASES} network, {NTM_CASES} NTM) in {:.1} s: {ok} loaded, {err} errors, {} failures",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    println!(
        "bound: 8 x file size + 512 KiB; valid files peaked at {} bytes for {} bytes ({:.1} x), at most {:.1} x their size ({} bytes for {})",
        honest_peak.0,
        honest_peak.1,
        honest_peak.0 as f64 / honest_peak.1.max(1) as f64,
        honest_ratio.0 as f64 / honest_ratio.1 as f64,
        honest_ratio.0,
        honest_ratio.1,
    );
    if let Some((peak, case)) = &max_peak {
        println!("largest peak: {peak} bytes, {case}");
    }
    println!(
        "{:<5} {:<22} {:>5} {:>5} {:>5} {:>7}",
        "", "kind", "cases", "ok", "err", "failed"
    );
    for ((family, kind), c) in &counts {
        println!(
            "{:<5} {kind:<22} {:>5} {:>5} {:>5} {:>7}",
            family.name(),
            c.cases,
            c.ok,
            c.err,
            c.failed
        );
    }
    let mut by_class: BTreeMap<(&str, String), Vec<&Failure>> = BTreeMap::new();
    for f in &failures {
        by_class
            .entry((f.class, f.group.clone()))
            .or_default()
            .push(f);
    }
    let mut report = String::new();
    for ((class, kind), list) in &by_class {
        let _ = writeln!(report, "{class} — {kind}: {} case(s), e.g.", list.len());
        for f in list.iter().take(2) {
            let _ = writeln!(report, "    {}\n      -> {}", f.case, f.what);
        }
    }
    if !report.is_empty() {
        println!("failures by class and kind:\n{report}");
    }

    assert!(
        failures.is_empty(),
        "{} failure(s) in {total} mutated files:\n{report}",
        failures.len()
    );
    assert!(
        ok * 20 >= total,
        "only {ok} of {total} mutated files loaded: the mutations are too destructive to test anything"
    );
    assert!(
        err * 2 >= total,
        "only {err} of {total} mutated files failed to load: the mutations do not exercise the checks"
    );
}
