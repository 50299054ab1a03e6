//! Durable write throughput of [`SqliteStore`]: serial creates, then creates from 16
//! concurrent writers, in a temporary directory.
//!
//! ```text
//! cargo run --release -p oxivirt-store --example store_bench [-- <serial count> <concurrent count>]
//! ```

use std::sync::Arc;
use std::time::Instant;

use oxivirt_store::{SqliteStore, Store};

const WRITERS: usize = 16;

/// A value shaped like a small Kubernetes object (~1 KiB of JSON).
fn object(n: usize) -> Vec<u8> {
    let padding = "x".repeat(900);
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{n}"}},"data":{{"pad":"{padding}"}}}}"#)
        .into_bytes()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let serial: usize = args.next().map_or(Ok(2_000), |a| a.parse())?;
    let concurrent: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?);

    let started = Instant::now();
    for i in 0..serial {
        store
            .create(&format!("/serial/{i:08}"), object(i), None)
            .await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "serial:        {serial:>6} creates in {secs:6.2}s = {:>7.0} creates/s",
        serial as f64 / secs
    );

    let per_writer = concurrent / WRITERS;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                store
                    .create(&format!("/concurrent/{w:02}/{i:08}"), object(i), None)
                    .await?;
            }
            Ok::<_, oxivirt_store::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let total = per_writer * WRITERS;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{WRITERS} writers:    {total:>6} creates in {secs:6.2}s = {:>7.0} creates/s",
        total as f64 / secs
    );
    Ok(())
}
