//! Reading files through a shared mapping: the crate's only `unsafe`.
//!
//! Why map: a steady-state pass needs only the value doubles, scattered through the used
//! part of every file (at 64 workers x 10,000 series, 640,000 values in 76 MB). Copying
//! the used bytes with `pread` costs most of a pass; through a mapping kept between passes
//! a pass touches one cache line per value and copies nothing. (Measured in
//! docs/benchmarks.md.)
//!
//! The rules that keep this sound, from the design:
//! - the file size is checked (`fstat`) before every pass over a file, and nothing past
//!   `min(used, size)` is ever touched: a page beyond the end of a file raises SIGBUS,
//!   and on tmpfs touching the sparse tail would allocate memory;
//! - no Rust reference is ever formed over the mapped bytes, because other processes
//!   write them: keys and the new tail are copied out with raw-pointer copies and parsed
//!   from the copy, and values are loaded with volatile reads;
//! - prometheus_client only ever grows files; if a file shrinks anyway, the mapping is
//!   dropped and made again for the new size before anything is read.
//!
//! What the size check cannot cover is a truncation by someone else between the check and
//! the reads of one pass: the next load from a page past the new end raises SIGBUS. Any
//! process that can write the directory could do that (prometheus_client itself never
//! does), so the process survives it: every mapping is registered in a fixed table of
//! address ranges ([`fault`]), and a SIGBUS handler that finds the faulting address in
//! one of them maps a zero page over the faulting page, marks that file, and returns.
//! Every value load checks the mark after loading, so the load that faulted (it read the
//! zero page) and every later one of the pass yield nothing: the entries keep their last
//! good values ([`View::faulted`] then reports it), and the mapping is made again at the
//! next pass. A fault anywhere else goes to
//! the handler that was there before (Rust's stack-overflow handler, then the default
//! action). A file whose mapping cannot be registered (the table is full) is read with
//! `pread` instead, value by value.

use super::{ReadError, open, read_at_most, read_header};
use crate::dir::{Dir, FileId};
use crate::format::HEADER_LEN;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An open file and its current mapping.
#[derive(Debug)]
pub struct MappedFile {
    file: File,
    map: Option<Registered>,
    id: FileId,
}

/// A mapping whose address range is in the fault table for as long as it lives.
#[derive(Debug)]
struct Registered {
    map: memmap2::Mmap,
    slot: usize,
}

impl Drop for Registered {
    fn drop(&mut self) {
        // Out of the table before the range is unmapped (the mapping drops after this).
        fault::unregister(self.slot);
    }
}

/// What one pass may read of a mapped file.
#[derive(Debug)]
pub struct View<'a> {
    file: &'a File,
    map: Option<&'a Registered>,
    /// Readable length: `min(used, size, limit, mapped)`, at least the header when
    /// there is one.
    pub len: usize,
    /// The header's `used`, if the file has a header.
    pub used: Option<i32>,
    /// The file size checked for this pass.
    pub size: u64,
    /// When the file's inode last changed (its creation, for a file never written).
    pub changed: Option<SystemTime>,
}

impl MappedFile {
    /// Opens `name` of `dir` (no symlinks, regular files only); maps nothing yet.
    ///
    /// # Errors
    /// As [`super::read_file`].
    pub fn open(dir: &Dir, name: impl AsRef<std::ffi::OsStr>) -> Result<MappedFile, ReadError> {
        let file = open(dir, name.as_ref())?;
        let meta = file.metadata().map_err(ReadError::Io)?;
        if !meta.file_type().is_file() {
            return Err(ReadError::NotRegular);
        }
        Ok(MappedFile {
            file,
            map: None,
            id: FileId::of(&meta),
        })
    }

    /// Which file is open (a path may since name another one).
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Checks the size, reads `used`, and (re)maps what this pass may read; with `map`
    /// false (a file that is closed again after this pass) nothing is mapped and values
    /// are read with `pread`.
    ///
    /// # Errors
    /// When the file cannot be examined or mapped.
    pub fn refresh(&mut self, limit: u64, map: bool) -> Result<View<'_>, ReadError> {
        let meta = self.file.metadata().map_err(ReadError::Io)?;
        let size = meta.len();
        let changed = u64::try_from(meta.ctime())
            .ok()
            .map(|s| UNIX_EPOCH + Duration::new(s, u32::try_from(meta.ctime_nsec()).unwrap_or(0)));
        let header = read_header(&self.file, size, limit)?;
        let Some((used, want)) = header.used else {
            self.map = None;
            return Ok(View {
                file: &self.file,
                map: None,
                len: header.got,
                used: None,
                size,
                changed,
            });
        };
        let mapped = self.map.as_ref().map_or(0, |m| m.map.len());
        // Map again when the file shrank under the mapping (never touch pages past the
        // end) or when the readable part grew beyond it. Map the whole file (up to the
        // limit): it grows by doubling, so remaps are rare; pages past `used` are never
        // touched.
        if (mapped as u64) > size || mapped < want {
            self.map = None;
            if map {
                self.map = self.map_file(size.min(limit))?;
            }
        }
        let map = self.map.as_ref();
        // Without a mapping (the fault table is full) values are read with `pread`.
        let len = match map {
            Some(m) => want.min(m.map.len()),
            None => want,
        };
        Ok(View {
            file: &self.file,
            map,
            len,
            used: Some(used),
            size,
            changed,
        })
    }
}

impl MappedFile {
    /// Maps the first `len` bytes and registers the range; `None` when the fault table
    /// is full (then the file is read without a mapping).
    fn map_file(&self, len: u64) -> Result<Option<Registered>, ReadError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len == 0 {
            return Ok(None);
        }
        // SAFETY: the mapping is read-only and shared, `len` is within the file size
        // just checked, and no reference to its bytes is ever created (see the module
        // documentation): reads go through `value_at`, which checks bounds against
        // `View::len` and uses volatile loads, because other processes change these
        // bytes while we read them. A truncation under the mapping is recovered by the
        // fault handler once the range is registered, which happens before any read.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.file) }
            .map_err(ReadError::Io)?;
        Ok(fault::register(map.as_ptr() as usize, map.len()).map(|slot| Registered { map, slot }))
    }

    /// Drops the mapping after a fault: the zero page the handler put in must not serve
    /// another pass, so the file is mapped afresh at the next.
    pub fn forget_mapping(&mut self) {
        self.map = None;
    }
}

impl View<'_> {
    /// The value pair at `offset` read with `pread`, for a file without a mapping (kept
    /// out of line: the steady path is the mapped one, once per value of a pass).
    #[cold]
    #[inline(never)]
    /// The value pair at `offset` as the file holds it now, read with `pread` (no
    /// mapping involved): for values a mapped load may have read from a page zeroed by a
    /// truncation that has since been undone.
    pub fn value_by_pread(&self, offset: usize) -> Option<(f64, f64)> {
        let mut pair = [0u8; 16];
        let got = read_at_most(self.file, &mut pair, offset as u64).ok()?;
        (got == 16)
            .then(|| crate::format::value_at(&pair, 0))
            .flatten()
    }

    /// Whether a load of this pass hit a page past the end of the file (someone
    /// truncated it under us): the values loaded in this pass are not the file's.
    /// Reading the flag clears it.
    pub fn faulted(&self) -> bool {
        self.map.is_some_and(|m| fault::take(m.slot))
    }

    /// Where the data that starts at `from` ends: the first hole at or after `from`, or
    /// the readable length. prometheus_client writes every byte below `used`, so a hole
    /// below it means the header claims what the file does not hold; reading it would
    /// cost memory for nothing (and through a mapping, on tmpfs, allocate it).
    pub fn data_end(&self, from: usize) -> usize {
        super::data_end(self.file, from, self.len)
    }

    /// Copies the header and `[from, to)` (`to` at most the readable length) into a buffer
    /// `to` bytes long, at the same offsets; the bytes in between stay zero (untouched pages). Parsing works on this
    /// copy. It is read with `pread`, not through the mapping: a kernel copy takes no
    /// page faults, which matters for the first, full read of a file.
    ///
    /// # Errors
    /// When `pread` fails (an I/O error on the file): nothing of this read is usable.
    pub fn copy_out(&self, from: usize, to: usize) -> Result<Vec<u8>, ReadError> {
        let to = to.min(self.len);
        let mut buf = vec![0u8; to];
        let header = HEADER_LEN.min(to);
        let from = from.max(header).min(to);
        let got = read_at_most(self.file, &mut buf[..header], 0).map_err(ReadError::Io)?;
        if got < header {
            // Truncated since the size check: nothing of this read is the file.
            buf.clear();
            return Ok(buf);
        }
        let got = read_at_most(self.file, &mut buf[from..], from as u64).map_err(ReadError::Io)?;
        // A read cut short by a truncation leaves zeros, which are not the file's bytes.
        buf.truncate(from + got);
        Ok(buf)
    }

    /// The file's size now, to tell whether it shrank during this pass (a truncation
    /// inside a page leaves the rest of the page mapped and zeroed: no fault, zeros).
    pub fn size_now(&self) -> Option<u64> {
        self.file.metadata().ok().map(|m| m.len())
    }

    /// Loads the pairs at `offset(0)`, `offset(1)`, ... `offset(n - 1)` in order,
    /// handing each to `each`, as [`value_at`](Self::value_at) would load them; stops at
    /// the first it cannot (returns how many were loaded). The values of a file lie a
    /// key apart, each on a cache line of its own, so the loop is bound by memory: it
    /// asks for the line `PREFETCH_AHEAD` entries ahead while it loads this one.
    pub fn load_each(
        &self,
        n: usize,
        offset: impl Fn(usize) -> usize,
        mut each: impl FnMut(usize, (f64, f64)),
    ) -> usize {
        let map = self.map.map(|r| &r.map);
        for i in 0..n {
            if let (Some(map), Some(ahead)) =
                (map, (i + PREFETCH_AHEAD < n).then_some(i + PREFETCH_AHEAD))
            {
                prefetch(map, offset(ahead));
            }
            let Some(v) = self.value_at(offset(i)) else {
                return i;
            };
            each(i, v);
        }
        n
    }

    /// Loads the `(value, timestamp)` pair at `offset`, if it lies within the readable
    /// length.
    #[inline]
    pub fn value_at(&self, offset: usize) -> Option<(f64, f64)> {
        let end = offset.checked_add(16)?;
        if end > self.len || !offset.is_multiple_of(8) {
            return None;
        }
        let Some(Registered { map, slot }) = self.map else {
            return self.value_by_pread(offset);
        };
        if end > map.len() {
            return None;
        }
        // SAFETY: `offset..offset + 16` is within the readable length (and so within the
        // mapping and the file size checked for this pass) and 8-byte aligned (mappings
        // are page aligned, entries put values at multiples of 8). Volatile loads read
        // what a concurrent writer stored, never a value the compiler assumed.
        let (value, timestamp) = unsafe {
            let p = map.as_ptr().add(offset).cast::<u64>();
            (
                std::ptr::read_volatile(p),
                std::ptr::read_volatile(p.add(1)),
            )
        };
        // A load that faulted read the zero page the handler put in: not a value. The
        // flag is read after the loads (the handler ran on this thread, at the load).
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        if fault::is_set(*slot) {
            return None;
        }
        Some((f64::from_bits(value), f64::from_bits(timestamp)))
    }
}

/// How many entries ahead [`View::load_each`] prefetches: enough to cover the latency
/// of a load from memory at a few nanoseconds per entry.
const PREFETCH_AHEAD: usize = 8;

/// Asks the CPU to bring the line at `offset` of `map` into the cache. A prefetch never
/// faults, whatever the address; it is skipped outside the mapping anyway.
#[inline]
fn prefetch(map: &memmap2::Mmap, offset: usize) {
    #[cfg(target_arch = "x86_64")]
    if offset < map.len() {
        // SAFETY: `offset` is inside the mapping, so the pointer is in bounds; a
        // prefetch reads nothing into the program and cannot fault (SSE, which every
        // x86_64 has).
        unsafe {
            let p = map.as_ptr().add(offset).cast::<i8>();
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (map, offset);
}

/// The table of mapped ranges and the SIGBUS handler that recovers a fault inside one.
///
/// Everything the handler touches is a fixed static of atomics: it allocates nothing,
/// takes no lock, logs nothing and never unwinds, so it is async-signal-safe. A slot is
/// owned by one mapping from `register` to `unregister`; the handler only reads slots and
/// sets a flag.
pub mod fault {
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// How many mappings can be registered at once; files beyond it are read with
    /// `pread`. Far above a pool's file count (752 at 64 workers with every gauge mode),
    /// and well below `vm.max_map_count`.
    pub const CAPACITY: usize = 8192;

    /// `end` while a slot is being filled.
    const FILLING: usize = usize::MAX;

    struct Slot {
        /// Odd while the slot changes; the handler only trusts a range read between two
        /// equal even generations (a seqlock), so it never sees half of an old range and
        /// half of a new one.
        generation: AtomicUsize,
        start: AtomicUsize,
        /// 0 for a free slot.
        end: AtomicUsize,
        faulted: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const FREE: Slot = Slot {
        generation: AtomicUsize::new(0),
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        faulted: AtomicBool::new(false),
    };

    static SLOTS: [Slot; CAPACITY] = [FREE; CAPACITY];
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    static INSTALL: Once = Once::new();
    /// Whether our handler is in place (installing can fail; then mappings are not used).
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    /// The action that was in place before ours, for faults that are not ours.
    static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
    static PREVIOUS_FLAGS: AtomicUsize = AtomicUsize::new(0);

    /// Registers `[start, start + len)`; `None` when the table is full or the handler
    /// could not be installed.
    pub fn register(start: usize, len: usize) -> Option<usize> {
        install();
        if !INSTALLED.load(Ordering::Acquire) {
            return None;
        }
        let end = start.checked_add(len)?;
        for (i, slot) in SLOTS.iter().enumerate() {
            if slot
                .end
                .compare_exchange(0, FILLING, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.generation.fetch_add(1, Ordering::AcqRel);
                slot.faulted.store(false, Ordering::Relaxed);
                slot.start.store(start, Ordering::Relaxed);
                slot.end.store(end, Ordering::Release);
                slot.generation.fetch_add(1, Ordering::AcqRel);
                return Some(i);
            }
        }
        None
    }

    /// Frees slot `i` (its range is about to be unmapped).
    pub fn unregister(i: usize) {
        if let Some(slot) = SLOTS.get(i) {
            slot.generation.fetch_add(1, Ordering::AcqRel);
            slot.end.store(0, Ordering::Release);
            slot.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Whether a fault hit the range of slot `i` and has not been taken yet.
    #[inline]
    pub fn is_set(i: usize) -> bool {
        SLOTS
            .get(i)
            .is_some_and(|s| s.faulted.load(Ordering::Relaxed))
    }

    /// Whether a fault hit the range of slot `i` since the last call; clears the flag.
    pub fn take(i: usize) -> bool {
        SLOTS
            .get(i)
            .is_some_and(|s| s.faulted.swap(false, Ordering::AcqRel))
    }

    fn install() {
        INSTALL.call_once(|| {
            if let Ok(Some(page)) = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            // SAFETY: a zeroed `sigaction` is a valid value (empty mask, no flags); the
            // handler installed is `on_sigbus`, which has the signature SA_SIGINFO asks
            // for and is async-signal-safe (module documentation). The previous action is
            // kept to pass on faults that are not ours.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_sigbus as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(libc::SIGBUS, &action, &mut previous) == 0 {
                    PREVIOUS.store(previous.sa_sigaction, Ordering::Relaxed);
                    PREVIOUS_FLAGS.store(previous.sa_flags as usize, Ordering::Relaxed);
                    INSTALLED.store(true, Ordering::Release);
                }
            }
        });
    }

    /// The SIGBUS handler: a fault inside a registered range gets a zero page and a flag;
    /// anything else goes to the previous action.
    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: `__errno_location` is this thread's errno; the handler must leave it as
        // the interrupted code had it (mmap and sigaction below may set it).
        let errno = unsafe { *libc::__errno_location() };
        recover_or_pass_on(sig, info, ctx);
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    fn recover_or_pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid `siginfo_t` for a SA_SIGINFO handler.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        if code <= 0 {
            // Sent by a process (kill, sigqueue), not a fault: `si_addr` means nothing.
            // Take the default action, as without us.
            die_by_default();
            return;
        }
        let page = PAGE.load(Ordering::Relaxed);
        for slot in &SLOTS {
            let before = slot.generation.load(Ordering::Acquire);
            let end = slot.end.load(Ordering::Acquire);
            if before % 2 == 1 || end == 0 || end == FILLING {
                continue;
            }
            let start = slot.start.load(Ordering::Acquire);
            if slot.generation.load(Ordering::Acquire) != before || addr < start || addr >= end {
                continue;
            }
            let at = addr & !(page - 1);
            // SAFETY: `at` is a page inside one of our own read-only file mappings (the
            // slot is registered until just before its mapping is unmapped, by the thread
            // that reads it, which is this one: a pass hands each file to one thread, and
            // its mapping is unmapped only by that thread or after the pass). Replacing that page with an anonymous
            // zero page keeps every address of the mapping valid; the loads that faulted
            // read zeros, which the pass discards because of the flag set below.
            let mapped = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if mapped != libc::MAP_FAILED {
                slot.faulted.store(true, Ordering::Release);
                return;
            }
            break;
        }
        pass_on(sig, info, ctx);
    }

    /// Hands a fault that is not ours to the previous action.
    fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let previous = PREVIOUS.load(Ordering::Relaxed);
        let flags = PREVIOUS_FLAGS.load(Ordering::Relaxed) as libc::c_int;
        if previous != libc::SIG_DFL && previous != libc::SIG_IGN && flags & libc::SA_SIGINFO != 0 {
            // SAFETY: `previous` was installed as a SA_SIGINFO handler, which has this
            // signature; it is called with the arguments the kernel gave us.
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(previous) };
            handler(sig, info, ctx);
            return;
        }
        // Returning re-executes the faulting instruction, which then takes the default
        // action (the process ends, as it would have without us).
        restore_default();
    }

    fn restore_default() {
        // SAFETY: restoring the default action for SIGBUS (async-signal-safe).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    }

    /// The default action for a SIGBUS that was sent, not caused by a load: it is
    /// re-raised (blocked until this handler returns) with the default action in place.
    fn die_by_default() {
        restore_default();
        // SAFETY: `raise` is async-signal-safe.
        unsafe {
            libc::raise(libc::SIGBUS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::DbWriter;

    #[test]
    fn reads_values_and_follows_growth_and_shrinking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        let mut w = DbWriter::open(&path).unwrap();
        w.set("[\"a\", \"a_total\", {}, \"\"]", 1.5, 0.0).unwrap();
        let mut m = MappedFile::open(&Dir::open(dir.path()).unwrap(), "counter_1.db").unwrap();
        let v = m.refresh(u64::MAX, true).unwrap();
        let used = HEADER_LEN + crate::format::entry_len(25, 16);
        assert_eq!(v.used, Some(used as i32));
        assert_eq!(v.len, used);
        let bytes = v.copy_out(HEADER_LEN, v.len).unwrap();
        assert_eq!(&bytes[..4], &(used as i32).to_ne_bytes());
        let e = crate::format::walk(&bytes, 8, bytes.len(), 16)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(v.value_at(e.value_offset), Some((1.5, 0.0)));
        assert_eq!(v.value_at(e.value_offset + 8), None, "past used");
        // A value changed through the writer is seen without remapping.
        w.set("[\"a\", \"a_total\", {}, \"\"]", 2.5, 0.0).unwrap();
        let v = m.refresh(u64::MAX, true).unwrap();
        assert_eq!(v.value_at(e.value_offset), Some((2.5, 0.0)));
        // Growth past the mapping remaps.
        let big = format!(
            "[\"a\", \"a_total\", {{\"k\": \"{}\"}}, \"\"]",
            "x".repeat(70_000)
        );
        w.set(&big, 3.0, 0.0).unwrap();
        let v = m.refresh(u64::MAX, true).unwrap();
        assert!(v.len > 70_000);
        // A file truncated by someone else: remapped to the new size before any read.
        drop(w);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1000)
            .unwrap();
        let v = m.refresh(u64::MAX, true).unwrap();
        assert_eq!(v.size, 1000);
        assert!(v.len <= 1000);
        assert_eq!(v.value_at(e.value_offset), Some((2.5, 0.0)));
        assert_eq!(v.value_at(2000), None);
    }

    /// Issue 8: a failed `pread` is an error of the read (unreadable), not a short file.
    #[test]
    fn test_issue_8_a_failed_pread_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        std::fs::write(&path, [0u8; 64]).unwrap();
        // A descriptor open for writing only: every pread fails with EBADF.
        let write_only = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let view = View {
            file: &write_only,
            map: None,
            len: 64,
            used: Some(64),
            size: 64,
            changed: None,
        };
        let err = view.copy_out(HEADER_LEN, 64).unwrap_err();
        let problem = crate::model::FileProblem::from(err);
        assert_eq!(problem.reason, crate::model::Reason::Unreadable);
    }

    #[test]
    fn short_files_have_no_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter_1.db");
        std::fs::write(&path, b"abc").unwrap();
        let mut m = MappedFile::open(&Dir::open(dir.path()).unwrap(), "counter_1.db").unwrap();
        let v = m.refresh(u64::MAX, true).unwrap();
        assert_eq!((v.len, v.used), (3, None));
        assert_eq!(v.value_at(0), None);
    }
}
