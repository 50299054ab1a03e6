//! CPU time a future spends being polled: the sum, over its polls, of the polling thread's
//! CPU clock. The request log reports it beside wall time, because wall time under load is
//! mostly queueing (the store's group commit, the runtime's other tasks) and says little
//! about what a request costs.
//!
//! Work the future hands to other threads (the store's writer, watchers) is not counted.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Runs `future` and returns its output with the CPU time spent polling it.
pub(crate) async fn measured<F: Future>(future: F) -> (F::Output, Duration) {
    Measured {
        inner: Box::pin(future),
        spent: Duration::ZERO,
    }
    .await
}

struct Measured<F> {
    inner: Pin<Box<F>>,
    spent: Duration,
}

impl<F: Future> Future for Measured<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let before = thread_cpu();
        let polled = self.inner.as_mut().poll(cx);
        self.spent += thread_cpu().saturating_sub(before);
        polled.map(|output| (output, self.spent))
    }
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_the_cpu_of_its_polls_and_not_its_waits() {
        let (value, cpu) = measured(async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let started = std::time::Instant::now();
            let mut x = 0u64;
            while started.elapsed() < Duration::from_millis(20) {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            x
        })
        .await;
        assert!(value > 0);
        assert!(cpu >= Duration::from_millis(15), "{cpu:?}");
        assert!(
            cpu < Duration::from_millis(45),
            "the sleep was counted: {cpu:?}"
        );
    }
}
