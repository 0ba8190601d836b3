//! The one helper for "do this for every item on a few threads": scoped threads that take the
//! next index from a shared counter, results back in index order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `job(i)` for every `i` in `0..count`, on up to `threads` scoped threads; the results in index
/// order. A result is `None` when the worker that ran it panicked: that worker's results are
/// lost with it, and the caller decides whether to redo them.
pub fn map_indexed<R: Send>(count: usize, threads: usize, job: impl Fn(usize) -> R + Sync) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    let done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, count.max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return done;
                        }
                        done.push((i, job(i)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    for (i, result) in done {
        results[i] = Some(result);
    }
    results
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_index_once_in_order_and_a_dead_worker_leaves_gaps() {
        let squares = super::map_indexed(50, 4, |i| i * i);
        assert_eq!(squares, (0..50).map(|i| Some(i * i)).collect::<Vec<_>>());
        assert!(super::map_indexed(0, 4, |i| i).is_empty());
        let with_panic = super::map_indexed(8, 1, |i| if i == 3 { panic!("on purpose") } else { i });
        assert_eq!(with_panic.len(), 8);
        assert!(with_panic.iter().all(Option::is_none), "the one worker died at 3, its results with it: {with_panic:?}");
    }
}
