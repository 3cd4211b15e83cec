//! The one thread that runs every merge pass and every render.
//!
//! Passes and renders are CPU-bound and must stay off the async workers. On tokio's
//! blocking pool they ran on whichever of its threads was free, and each thread
//! allocated their large blocks (the 7.7 MB body at the L of DESIGN section 6, the
//! pass's vectors) from a glibc arena of its own, which kept its own high-water mark:
//! `RssAnon` grew from 64 to 90 MB over 1,000 scrapes (issue 11). Passes are serialised
//! by the pipeline lock and renders follow their pass, so one thread costs them
//! nothing, and their blocks are reused from one arena pass after pass. Lifecycle
//! rounds stay on the blocking pool: a slow round (compaction) must not delay a render.

use std::any::Any;
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// What a job gives back: its value, or the payload of its panic.
pub type Outcome<T> = Result<T, Box<dyn Any + Send>>;

/// A handle on the thread; jobs run one at a time, in the order they were given.
#[derive(Debug)]
pub struct Worker {
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts the thread of passes and renders.
    ///
    /// # Errors
    /// When no thread can be started.
    pub fn start() -> std::io::Result<Worker> {
        Worker::start_named("scrape-worker", None)
    }

    /// Starts a thread named `name`, at the nice value `nice` if given (on Linux the
    /// nice value is the thread's own): the password checks of basic auth run at the
    /// lowest priority, so a flood of wrong passwords takes only the CPU that scrapes
    /// leave (issue 12).
    ///
    /// # Errors
    /// When no thread can be started.
    pub fn start_named(name: &str, nice: Option<i32>) -> std::io::Result<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let label = name.to_owned();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if let Some(nice) = nice
                    && let Err(err) = rustix::process::setpriority_process(None, nice)
                {
                    tracing::warn!(thread = %label, nice, error = %err, "cannot lower the thread's priority");
                }
                for job in queue {
                    job();
                }
            })?;
        Ok(Worker { jobs })
    }

    /// Runs `job` on the thread and waits for it without blocking the async workers. A
    /// panic is caught there (the thread lives on) and returned.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Outcome<T> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
        });
        if self.jobs.send(job).is_err() {
            return Err(Box::new("the scrape worker thread is gone"));
        }
        outcome
            .await
            .unwrap_or_else(|_| Err(Box::new("the scrape worker thread is gone")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_one_thread_and_a_panic_is_returned() {
        let w = Worker::start().unwrap();
        let a = w.run(|| std::thread::current().id()).await.unwrap();
        let b = w.run(|| std::thread::current().id()).await.unwrap();
        assert_eq!(a, b);
        assert_ne!(a, std::thread::current().id());
        let panicked = w.run(|| -> u32 { panic!("in a job") }).await;
        let payload = panicked.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"in a job"));
        // The thread survived its job's panic.
        assert_eq!(w.run(|| 7).await.unwrap(), 7);
    }
}
