//! Body buffers that come back when the last response holding them is done.
//!
//! Every pass renders a body of the size of the exposition (7.7 MB at the L of DESIGN
//! section 6). Allocated afresh each time, glibc placed it in the arena when it could and
//! mapped a new block when it could not: after a pass over thousands of dead writers' files
//! had fragmented the arena, each scrape mapped and faulted the body in again (1,880
//! page faults per scrape, p50 +10%: issue 11, the churn row). Reusing the buffers makes
//! the cost independent of what the process went through. The pool keeps at most
//! [`KEPT`] buffers, so it holds what a pass and the bodies still being sent need.

use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// Spare buffers kept: the body being rendered and the one the previous pass still
/// serves are the only large ones alive at a time.
pub const KEPT: usize = 2;

/// The spare body buffers of one server.
#[derive(Debug, Default)]
pub struct Recycler {
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Recycler {
    /// An empty buffer with room for `capacity` bytes, reused when one is spare.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.lock().pop();
        let mut buf = reused.unwrap_or_default();
        buf.clear();
        buf.reserve(capacity);
        buf
    }

    /// Gives `buf` back for a later [`Recycler::take`]; of more than [`KEPT`], the
    /// smallest is dropped.
    pub fn give(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let mut spare = self.lock();
        spare.push(buf);
        // The largest last, so that it is the one taken next.
        spare.sort_by_key(Vec::capacity);
        if spare.len() > KEPT {
            spare.remove(0);
        }
    }

    /// `buf` as a response body that gives the buffer back once no clone of it is left.
    pub fn bytes(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returned {
            buf,
            home: self.clone(),
        })
    }

    /// Spare buffers now.
    pub fn spare(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The owner of a body's bytes while responses hold them.
struct Returned {
    buf: Vec<u8>,
    home: Arc<Recycler>,
}

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        self.home.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_comes_back_when_its_last_clone_is_dropped() {
        let pool = Arc::new(Recycler::default());
        let mut buf = pool.take(1 << 20);
        buf.extend_from_slice(b"abc");
        let at = buf.as_ptr();
        let body = pool.bytes(buf);
        let clone = body.clone();
        drop(body);
        assert_eq!(pool.spare(), 0, "a clone still holds it");
        assert_eq!(&clone[..], b"abc");
        drop(clone);
        assert_eq!(pool.spare(), 1);
        let again = pool.take(10);
        assert!(again.is_empty());
        assert_eq!(
            again.as_ptr(),
            at,
            "the same allocation is handed out again"
        );
        assert!(again.capacity() >= 1 << 20);
    }

    #[test]
    fn the_largest_buffers_are_kept_and_taken_first() {
        let pool = Recycler::default();
        for size in [10, 1000, 100, 5] {
            pool.give(Vec::with_capacity(size));
        }
        assert_eq!(pool.spare(), KEPT);
        assert!(pool.take(0).capacity() >= 1000);
        assert!(pool.take(0).capacity() >= 100);
        pool.give(Vec::new());
        assert_eq!(
            pool.spare(),
            0,
            "an unallocated buffer is not worth keeping"
        );
    }

    /// The body of one pass, rendered as the server does.
    fn render(pool: &Arc<Recycler>, gzip: bool) -> Bytes {
        use crate::model::{Family, LabelSet, LayoutBuilder, MetricType};
        let mut b = LayoutBuilder::default();
        for i in 0..1000 {
            let labels = LabelSet::new([("i", i.to_string().as_str())]);
            b.push(&Arc::from("requests_total"), &labels, None, None);
        }
        let layout = Arc::new(b.finish());
        let values = (0..1000).map(|i| Some(f64::from(i)));
        let f = Family::new(
            "requests".into(),
            "".into(),
            MetricType::Counter,
            layout,
            values,
        );
        let key = super::super::flight::BodyKey {
            format: crate::render::Format::Text004,
            gzip,
            names: None,
        };
        super::super::flight::encode(&[f], &key, pool).expect("render")
    }

    #[test]
    fn test_issue_11_each_pass_renders_into_a_buffer_of_the_last() {
        let pool = Arc::new(Recycler::default());
        let first = render(&pool, false);
        let (at, text) = (first.as_ptr(), first.to_vec());
        let spelled = String::from_utf8_lossy(&text);
        assert!(
            spelled.contains("requests_total{i=\"999\"} 999.0\n"),
            "{spelled}"
        );
        drop(first);
        assert_eq!(pool.spare(), 1, "the finished body's buffer came back");
        let second = render(&pool, false);
        assert_eq!(
            second.as_ptr(),
            at,
            "the second pass reuses the first's buffer"
        );
        assert_eq!(second, text);
        // A compressed body frees its text at once; the next text body reuses it.
        let packed = render(&pool, true);
        assert_eq!(pool.spare(), 1);
        drop(second);
        assert_eq!(pool.spare(), 2);
        drop(packed);
        assert_eq!(render(&pool, false), text);
    }
}
